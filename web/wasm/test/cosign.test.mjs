// node:test — the phone's half in WebAssembly co-signs through the real `medsign serve`: a
// scanned ticket (data flow, then the hospital seal follows), a pending list signed as a batch
// with one PIN entry, and the refusals a phone can meet (wrong PIN before anything is sent, a
// foreign flow, a replayed ticket); scan-to-login followed by SSE; a session grant.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as phone from '../medsign-phone.js';
import { startServer, bindPhone, enrol, coSign, signRounds, readEvents, mobilePost } from '../testkit/server.mjs';

let srv, call, his, me, key, secret;
let PIN = '135790';

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

test('refusals: a wrong PIN is counted by the server before any signing request, another doctor’s document', async () => {
  const f = await call('POST', '/api/v1/sign-flows', his, flow('门诊病历 MZ0002'));
  const sent = [];
  const real = mobilePost(call, me);
  const counting = async (what, body) => { sent.push(what); return real(what, body); };
  await assert.rejects(phone.signMany({ post: counting, wrapped: key.wrapped, pin: '000000', deviceSecret: secret, digests: ['00'.repeat(32)] }), (e) => e.status === 401 && /4 attempts left/.test(e.message));
  assert.deepEqual(sent, ['unlock'], 'no signing request after a wrong PIN');
  // change the PIN (R3.9): the share is re-wrapped; the old PIN stops working, the new one opens it
  key.wrapped = await phone.changePin({ post: real, wrapped: key.wrapped, pin: PIN, newPin: '258036', deviceSecret: secret });
  await assert.rejects(phone.signMany({ post: real, wrapped: key.wrapped, pin: PIN, deviceSecret: secret, digests: ['00'.repeat(32)] }), (e) => e.status === 401);
  PIN = '258036';
  const other = await bindPhone(call, his, '1002');
  const r = await call('POST', '/mobile/v1/sign-rounds', other, { targets: [{ flow_id: f.body.id }] });
  assert.equal(r.status, 403);
  assert.equal(r.body.code, 'forbidden');
  assert.match(r.body.message, /不需要您签署/);
});

test('scan-to-login: the PC page follows by SSE, the system gets a verifiable signed assertion', async () => {
  const t = await call('POST', '/api/v1/login-tickets', his, { system: '门诊医生站', challenge: 'nonce-7f3a' });
  assert.equal(t.status, 201, JSON.stringify(t.body));
  assert.equal(t.body.state, 'waiting');
  assert.match(t.body.deep_link, /\/m\/#\/login\?t=lt_/);
  const id = t.body.ticket_id;
  // the PC page listens without a token (the ticket id is the capability)
  const events = readEvents(`${srv.base}/api/v1/login-tickets/${id}/events`, (e) => ['confirmed', 'refused', 'expired'].includes(e.data.state));
  await new Promise((ok) => setTimeout(ok, 300));
  const scanned = await call('POST', `/mobile/v1/login-tickets/${id}/scan`, me);
  assert.equal(scanned.status, 201, JSON.stringify(scanned.body));
  assert.equal(scanned.body.system, '门诊医生站');
  const results = await signRounds(call, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, rounds: [scanned.body.round] });
  assert.equal(results[0].state, 'completed');
  const states = (await events).map((e) => e.data.state);
  assert.deepEqual(states.filter((s, i) => states.indexOf(s) === i), states, 'each state once');
  assert.equal(states[0], 'waiting');
  assert.equal(states.at(-1), 'confirmed');
  // the system reads the assertion with its token and verifies it
  const v = await call('GET', `/api/v1/login-tickets/${id}`, his);
  assert.equal(v.body.state, 'confirmed');
  const a = v.body.assertion;
  const signed = JSON.parse(Buffer.from(a.data_base64, 'base64').toString('utf8'));
  assert.deepEqual([signed.type, signed.employee_no, signed.system, signed.challenge], ['medsign.login.v1', '1001', '门诊医生站', 'nonce-7f3a']);
  const check = await call('POST', '/api/v1/verify/data', his, { signature: a.signature_base64, data: a.data_base64 });
  assert.equal(check.body.indication, 'TOTAL_PASSED', JSON.stringify(check.body));
  // one scan per ticket; no token, no assertion; an unknown ticket has no events
  const again = await call('POST', `/mobile/v1/login-tickets/${id}/scan`, me);
  assert.equal(again.status, 400);
  assert.match(again.body.message, /already used/);
  assert.equal((await call('GET', `/api/v1/login-tickets/${id}`)).status, 401);
  await assert.rejects(readEvents(`${srv.base}/api/v1/login-tickets/lt_nope/events`, () => true), (e) => e.status === 404);
  await assert.rejects(readEvents(`${srv.base}/api/v1/sign-tickets/st_nope/events`, () => true), (e) => e.status === 404);
});

test('scan-to-login declined on the phone: the PC page sees refused', async () => {
  const t = await call('POST', '/api/v1/login-tickets', his);
  assert.equal(t.status, 201, JSON.stringify(t.body));
  assert.equal(t.body.system, 'HIS', 'defaults to the app name');
  const scanned = await call('POST', `/mobile/v1/login-tickets/${t.body.ticket_id}/scan`, me);
  assert.equal(scanned.status, 201);
  assert.equal((await call('POST', `/mobile/v1/login-tickets/${t.body.ticket_id}/refuse`, me)).status, 204);
  const seen = await readEvents(`${srv.base}/api/v1/login-tickets/${t.body.ticket_id}/events`, (e) => e.data.state === 'refused');
  assert.equal(seen.at(-1).data.state, 'refused');
  const bad = await call('POST', '/api/v1/login-tickets', his, { ttl_seconds: 5 });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 'invalid_request');
});

test('a session grant lets the HIS sign without the phone until the doctor cancels it', async () => {
  const autoFlow = (title) => ({ kind: 'data', title, content: `${title}：NS 250ml ivgtt qd`, signers: [{ employee_no: '1001' }] });
  const before = await call('POST', '/api/v1/sign-flows', his, autoFlow('医嘱 A'));
  assert.equal(before.status, 400, 'no custody, no grant');
  assert.match(before.body.message, /session grant/);
  const systems = await call('GET', '/mobile/v1/systems', me);
  const hisApp = systems.body.items.find((s) => s.name === 'HIS');
  assert.ok(hisApp, JSON.stringify(systems.body));
  const started = await call('POST', '/mobile/v1/grants', me, { app_id: hisApp.app_id, hours: 2 });
  assert.equal(started.status, 201, JSON.stringify(started.body));
  const sealed = await phone.sealForGrant({ post: mobilePost(call, me), wrapped: key.wrapped, pin: PIN, deviceSecret: secret, publicKey: started.body.public_key, context: started.body.context });
  assert.ok(!sealed.includes(key.wrapped.slice(-20)));
  const active = await call('POST', `/mobile/v1/grants/${started.body.grant_id}/share`, me, { sealed });
  assert.equal(active.status, 200, JSON.stringify(active.body));
  assert.equal(active.body.state, 'active');
  // the HIS signs without the phone; the signature cites the grant
  const f = await call('POST', '/api/v1/sign-flows', his, autoFlow('医嘱 B'));
  assert.equal(f.status, 201, JSON.stringify(f.body));
  assert.equal(f.body.state, 'completed');
  assert.equal(f.body.signers[0].custody, 'grant');
  assert.equal(f.body.signers[0].grant_id, started.body.grant_id);
  const listed = await call('GET', '/mobile/v1/grants', me);
  assert.equal(listed.body.items[0].used_count, 1);
  // cancelled on the phone: refused at once
  const cancelled = await call('DELETE', `/mobile/v1/grants/${started.body.grant_id}`, me);
  assert.equal(cancelled.body.state, 'cancelled');
  assert.equal((await call('POST', '/api/v1/sign-flows', his, autoFlow('医嘱 C'))).status, 400);
  assert.equal((await call('DELETE', `/mobile/v1/grants/${started.body.grant_id}`, me)).status, 409);
  // the session token alone (a sealed share replayed for another grant) is refused: the
  // doctor did not approve that grant (issue #15); approved, the foreign seal is still refused
  const g2 = await call('POST', '/mobile/v1/grants', me, { app_id: hisApp.app_id, hours: 1 });
  const unapproved = await call('POST', `/mobile/v1/grants/${g2.body.grant_id}/share`, me, { sealed });
  assert.equal(unapproved.status, 403);
  assert.equal(unapproved.body.code, 'approval_required');
  await phone.sealForGrant({ post: mobilePost(call, me), wrapped: key.wrapped, pin: PIN, deviceSecret: secret, publicKey: g2.body.public_key, context: g2.body.context });
  const bad = await call('POST', `/mobile/v1/grants/${g2.body.grant_id}/share`, me, { sealed });
  assert.equal(bad.status, 400);
  assert.equal((await call('POST', '/mobile/v1/grants', me, { app_id: hisApp.app_id, hours: 24 })).status, 400);
});

test('own records: the doctor sees what was signed (phone, grant) and every login event', async () => {
  const r = await call('GET', '/mobile/v1/records?limit=100', me);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const custody = new Set(r.body.signatures.map((s) => s.custody));
  assert.ok(custody.has('two-party') && custody.has('grant'), JSON.stringify([...custody]));
  assert.ok(r.body.signatures.some((s) => s.title === '住院病历 ZY0001'));
  const actions = r.body.logins.map((l) => `${l.action}:${l.outcome}`);
  for (const a of ['device.activate:ok', 'pin.set:ok', 'pin.verify:ok', 'pin.verify:refused', 'pin.change:ok', 'login.qr:ok']) {
    assert.ok(actions.includes(a), `${a} in ${actions}`);
  }
  assert.ok(!JSON.stringify(r.body.logins).includes('signature"'), 'the login signature itself is not repeated');
  assert.equal((await call('GET', '/mobile/v1/records?limit=0', me)).status, 400);
  assert.equal((await call('GET', '/mobile/v1/records?nope=1', me)).status, 400);
});
