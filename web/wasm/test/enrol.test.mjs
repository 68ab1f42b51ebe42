// node:test — a phone enrols against the real `medsign serve` (target/debug/medsign) over HTTP:
// activation code from the HIS API → /mobile/v1/activate → two-party key generation through
// medsign-phone.js (WebAssembly) → a certificate for the joint key; binding a second phone ends
// the first one's session and revokes its certificate; bad input gets the JSON error envelope.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as phone from '../medsign-phone.js';
import { startServer, bindPhone, enrol } from '../testkit/server.mjs';

let srv, call;

before(async () => {
  srv = await startServer();
  call = srv.call;
});

after(() => srv?.stop());

test('a phone binds, enrols a two-party key and gets its certificate; a new phone replaces it', async () => {
  assert.ok(srv.admin, 'bootstrap token');
  const app = await call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'certs'] });
  assert.equal(app.status, 201);
  const his = app.body.token;
  assert.equal((await call('POST', '/api/v1/users', his, { employee_no: '1001', name: '张三' })).status, 201);

  const session = await bindPhone(call, his, '1001');
  const secret = phone.deviceSecret();
  const first = await enrol(call, session, '135790', secret);
  const der = Buffer.from(first.certificate.certificate_pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  assert.ok(der.toString('hex').includes(first.publicKey), 'the certificate holds the joint public key');
  assert.equal(first.certificate.alg, 'sm2');

  // a second phone: the first session ends and its certificate is revoked (superseded)
  const session2 = await bindPhone(call, his, '1001');
  assert.equal((await call('POST', '/mobile/v1/keys', session)).status, 401);
  const old = await call('GET', `/api/v1/certificates/${first.certificate.serial}`, his);
  assert.equal(old.body.status, 'revoked');
  const second = await enrol(call, session2, '246800', phone.deviceSecret());
  assert.notEqual(second.publicKey, first.publicKey);
});

test('bad input is refused with the error envelope', async () => {
  const wrong = await call('POST', '/mobile/v1/activate', null, { employee_no: '1001', code: 'AAAA-BBBB-CCCC', device_name: 'x' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.code, 'unauthorized');
  assert.match(wrong.body.message, /activation code is not valid/);
  assert.equal((await call('POST', '/mobile/v1/keys', 'mt_forged')).status, 401);
  const extra = await call('POST', '/mobile/v1/activate', null, { employee_no: '1001', code: 'x', device_name: 'x', more: 1 });
  assert.equal(extra.status, 400);
});
