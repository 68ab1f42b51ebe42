// node:test — a phone enrols against the real `medsign serve` (target/debug/medsign) over HTTP:
// activation code from the HIS API → /mobile/v1/activate → two-party key generation through
// medsign-phone.js (WebAssembly) → a certificate for the joint key; binding a second phone ends
// the first one's session and revokes its certificate; bad input gets the JSON error envelope.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as phone from '../medsign-phone.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let server, base, admin, dir;

before(async () => {
  await phone.load(readFileSync(`${root}web/wasm/pkg/medsign_wasm_bg.wasm`));
  dir = mkdtempSync(join(tmpdir(), 'medsign-node-'));
  const bin = process.env.MEDSIGN_BIN || `${root}target/debug/medsign`;
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data')], {
    env: { ...process.env, MEDSIGN_TIME_SOURCES: '127.0.0.1:9', MEDSIGN_TIME_POLL_SECONDS: '3600' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines = createInterface({ input: server.stderr });
  let tokenNext = false;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('medsign did not start')), 60000);
    lines.on('line', (l) => {
      if (tokenNext) { admin = l.trim(); tokenNext = false; }
      if (l.includes('bootstrap token')) tokenNext = true;
      const m = l.match(/listening on (\S+)/);
      if (m) { base = `http://${m[1]}`; clearTimeout(timer); resolve(); }
    });
  });
});

after(() => {
  server?.kill();
  rmSync(dir, { recursive: true, force: true });
});

async function call(method, path, token, body) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function bindPhone(his, employee) {
  const code = await call('POST', `/api/v1/users/${employee}/activation-codes`, his);
  assert.equal(code.status, 201, JSON.stringify(code.body));
  const act = await call('POST', '/mobile/v1/activate', null, { employee_no: employee, code: code.body.code, device_name: 'node test phone' });
  assert.equal(act.status, 201, JSON.stringify(act.body));
  return act.body.token;
}

async function enrol(session, pin, secret) {
  const start = await call('POST', '/mobile/v1/keys', session);
  assert.equal(start.status, 201, JSON.stringify(start.body));
  let certificate = null;
  const post = async (what, request) => {
    const r = await call('POST', `/mobile/v1/keys/${start.body.key_id}`, session, { request });
    if (r.status !== 201) throw new Error(r.body.message);
    certificate = r.body.certificate;
    return r.body.response;
  };
  const out = await phone.enrol({ post, context: start.body.context, pin, deviceSecret: secret });
  return { ...out, certificate };
}

test('a phone binds, enrols a two-party key and gets its certificate; a new phone replaces it', async () => {
  assert.ok(admin, 'bootstrap token');
  const app = await call('POST', '/admin/v1/apps', admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'certs'] });
  assert.equal(app.status, 201);
  const his = app.body.token;
  assert.equal((await call('POST', '/api/v1/users', his, { employee_no: '1001', name: '张三' })).status, 201);

  const session = await bindPhone(his, '1001');
  const secret = phone.deviceSecret();
  const first = await enrol(session, '135790', secret);
  const der = Buffer.from(first.certificate.certificate_pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  assert.ok(der.toString('hex').includes(first.publicKey), 'the certificate holds the joint public key');
  assert.equal(first.certificate.alg, 'sm2');

  // a second phone: the first session ends and its certificate is revoked (superseded)
  const session2 = await bindPhone(his, '1001');
  assert.equal((await call('POST', '/mobile/v1/keys', session)).status, 401);
  const old = await call('GET', `/api/v1/certificates/${first.certificate.serial}`, his);
  assert.equal(old.body.status, 'revoked');
  const second = await enrol(session2, '246800', phone.deviceSecret());
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
