// node:test — the phone's half in WebAssembly co-signs through the real `medsign serve`: a
// scanned ticket (data flow, then the hospital seal follows), a pending list signed as a batch
// with one PIN entry, and the refusals a phone can meet (wrong PIN before anything is sent, a
// foreign flow, a replayed ticket).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as phone from '../medsign-phone.js';
import { startServer, bindPhone, enrol, coSign } from '../testkit/server.mjs';

let srv, call, his, me, key, secret;
const PIN = '135790';

before(async () => {
  srv = await startServer();
  call = srv.call;
  const app = await call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'sign', 'verify'] });
  his = app.body.token;
  const users = [{ employee_no: '1001', name: '张三', title: '主治医师' }, { employee_no: '1002', name: '李四' }];
  assert.equal((await call('POST', '/api/v1/users', his, users)).status, 201);
  me = await bindPhone(call, his, '1001');
  secret = phone.deviceSecret();
  key = await enrol(call, me, PIN, secret);
});

after(() => srv?.stop());

const flow = (title, extra = {}) => ({ kind: 'data', title, content: `${title}: 血常规未见异常`, signers: [{ employee_no: '1001', mode: 'scan' }], ...extra });

test('a scanned ticket is co-signed and the seal follows; the result verifies', async () => {
  const f = await call('POST', '/api/v1/sign-flows', his, flow('住院病历 ZY0001', { signers: [{ employee_no: '1001', mode: 'scan' }, { seal: 'hospital' }] }));
  assert.equal(f.status, 201, JSON.stringify(f.body));
  const ticket = new URL(f.body.ticket.deep_link).hash.split('t=')[1];
  const { rounds, results } = await coSign(call, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, targets: [{ ticket }] });
  assert.equal(rounds[0].summary.title, '住院病历 ZY0001');
  assert.equal(rounds[0].summary.kind, 'data');
  assert.equal(results[0].state, 'completed');
  const p7s = await fetch(`${srv.base}/api/v1/sign-flows/${f.body.id}/file?signature=p7s`, { headers: { Authorization: `Bearer ${his}` } });
  const signature = Buffer.from(await p7s.arrayBuffer()).toString('base64');
  const v = await call('POST', '/api/v1/verify/data', his, { signature, data: Buffer.from('住院病历 ZY0001: 血常规未见异常').toString('base64') });
  assert.equal(v.status, 200, JSON.stringify(v.body));
  assert.equal(v.body.indication, 'TOTAL_PASSED', JSON.stringify(v.body));
  assert.equal(v.body.signers.length, 2);
  // scanning the same QR again: the document is signed, nothing more to do
  await assert.rejects(coSign(call, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, targets: [{ ticket }] }), (e) => e.status === 409 && /completed/.test(e.message));
});

test('a pending list is signed as one batch with one PIN entry', async () => {
  const ids = [];
  for (let i = 0; i < 30; i++) ids.push((await call('POST', '/api/v1/sign-flows', his, flow(`检验报告 LIS${i}`))).body.id);
  const pending = await call('GET', '/mobile/v1/pending', me);
  assert.deepEqual(pending.body.items.map((i) => i.flow_id).sort(), [...ids].sort());
  const { results } = await coSign(call, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, targets: ids.map((flow_id) => ({ flow_id })) });
  assert.equal(results.filter((r) => r.state === 'completed').length, 30, JSON.stringify(results));
  assert.equal((await call('GET', '/mobile/v1/pending', me)).body.items.length, 0);
});

test('refusals: wrong PIN before anything is sent, another doctor’s document', async () => {
  const f = await call('POST', '/api/v1/sign-flows', his, flow('门诊病历 MZ0002'));
  let sent = 0;
  const counting = async () => { sent++; return []; };
  await assert.rejects(phone.signMany({ post: counting, wrapped: key.wrapped, pin: '000000', deviceSecret: secret, digests: ['00'.repeat(32)] }), /wrong PIN/);
  assert.equal(sent, 0);
  const other = await bindPhone(call, his, '1002');
  const r = await call('POST', '/mobile/v1/sign-rounds', other, { targets: [{ flow_id: f.body.id }] });
  assert.equal(r.status, 403);
  assert.equal(r.body.code, 'forbidden');
  assert.match(r.body.message, /不需要您签署/);
});
