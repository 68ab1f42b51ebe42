// node:test — a phone enrols against the real `medsign serve` (target/debug/medsign) over HTTP:
// activation code from the HIS API → /mobile/v1/activate → two-party key generation through
// medsign-phone.js (WebAssembly) → a certificate for the joint key; binding a second phone ends
// the first one's session and revokes its certificate; bad input gets the JSON error envelope.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as phone from '../medsign-phone.js';
import { startServer, bindPhone, enrol, mobilePost } from '../testkit/server.mjs';

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

test('a certificate is renewed from the request phone and server sign together; the phone signs only its own key', async () => {
  const app = await call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS-renew', scopes: ['users:write', 'users:read', 'certs'] });
  const his = app.body.token;
  assert.equal((await call('POST', '/api/v1/users', his, { employee_no: '1002', name: '李医生' })).status, 201);
  assert.equal((await call('POST', '/api/v1/users', his, { employee_no: '1003', name: '赵医生' })).status, 201);
  const session = await bindPhone(call, his, '1002');
  const secret = phone.deviceSecret();
  const mine = await enrol(call, session, '135790', secret);
  const post = mobilePost(call, session);
  // the doctor is shown the name read from the request the phone signs, and may decline
  const shown = [];
  await assert.rejects(
    phone.renewCertificate({ post, wrapped: mine.wrapped, pin: '135790', deviceSecret: secret, serial: mine.certificate.serial, confirm: (n) => { shown.push(n); return false; } }),
    /cancelled/,
  );
  const renewed = await phone.renewCertificate({ post, wrapped: mine.wrapped, pin: '135790', deviceSecret: secret, serial: mine.certificate.serial, confirm: (n) => { shown.push(n); return true; } });
  assert.deepEqual(shown, ['李医生', '李医生']);
  assert.notEqual(renewed.serial, mine.certificate.serial);
  const der = Buffer.from(renewed.certificate_pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  assert.ok(der.toString('hex').includes(mine.publicKey), 'the same joint key');
  assert.equal((await call('GET', `/api/v1/certificates/${mine.certificate.serial}`, his)).body.status, 'revoked');

  // a server half that hands this phone another key's request gets no signature: the request
  // of 1003's key, given to 1002's phone
  const other = await bindPhone(call, his, '1003');
  const otherSecret = phone.deviceSecret();
  const theirs = await enrol(call, other, '246800', otherSecret);
  const foreign = (await call('POST', '/mobile/v1/certificate/csr', other)).body;
  assert.equal(foreign.renewal, theirs.certificate.serial);
  let answered = 0;
  const swapped = async (what, body) => {
    if (what === 'certificate/csr') return { ...(await post(what, body)), info: foreign.info };
    if (what === 'certificate/csr/answer') answered++;
    return post(what, body);
  };
  await assert.rejects(
    phone.renewCertificate({ post: swapped, wrapped: mine.wrapped, pin: '135790', deviceSecret: secret, serial: renewed.serial }),
    /not this phone's key/,
  );
  assert.equal(answered, 0, 'nothing was signed');
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
