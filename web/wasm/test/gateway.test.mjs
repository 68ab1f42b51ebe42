// node:test — the phone's half in WebAssembly, reaching the hospital ONLY through `medsign gateway`
// (docs/gateway.md): the real `medsign serve` opens its mutual-TLS tunnel out to the real gateway
// binary, and every phone call below goes to the gateway's address; the HIS talks to the server.
// Bind, real-name check (the dev provider, marked demo), two-party key, a scanned ticket, a
// pending batch with one PIN entry, a session grant, and the gateway's refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as phone from '../medsign-phone.js';
import { startBehindGateway, bindPhone, enrol, coSign, mobilePost } from '../testkit/server.mjs';

let srv, his, me, key, secret;
const PIN = '135790';

before(async () => {
  srv = await startBehindGateway({ MEDSIGN_REALNAME_PROVIDER: 'dev' });
  const app = await srv.call('POST', '/admin/v1/apps', srv.admin, { name: 'HIS', scopes: ['users:write', 'users:read', 'sign', 'verify'] });
  assert.equal(app.status, 201, JSON.stringify(app.body));
  his = app.body.token;
  assert.equal((await srv.call('POST', '/api/v1/users', his, { employee_no: '1001', name: '张三', id_card: '11010519491231002X' })).status, 201);
  // the activation code comes from the HIS; everything the phone does goes through the gateway
  const code = await srv.call('POST', '/api/v1/users/1001/activation-codes', his);
  const act = await srv.phoneCall('POST', '/mobile/v1/activate', null, { employee_no: '1001', code: code.body.code, device_name: 'node phone via gateway' });
  assert.equal(act.status, 201, JSON.stringify(act.body));
  me = act.body.token;
});

after(() => srv?.stop());

test('the phone passes the real-name check and enrols through the gateway', async () => {
  const started = await srv.phoneCall('POST', '/mobile/v1/realname', me, {});
  assert.equal(started.status, 201, JSON.stringify(started.body));
  assert.equal(started.body.demo, true);
  const done = await srv.phoneCall('POST', `/mobile/v1/realname/${started.body.check_id}`, me);
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.realname_status, 'verified-demo');
  secret = phone.deviceSecret();
  key = await enrol(srv.phoneCall, me, PIN, secret);
  assert.equal(key.certificate.alg, 'sm2');
});

test('scan-sign and a pending batch, one PIN entry each, through the gateway', async () => {
  const flow = (title) => ({ kind: 'data', title, content: `${title}: 血常规未见异常`, signers: [{ employee_no: '1001', mode: 'scan' }] });
  const f = await srv.call('POST', '/api/v1/sign-flows', his, flow('检验报告 GW0001'));
  const ticket = new URL(f.body.ticket.deep_link).hash.split('t=')[1];
  const one = await coSign(srv.phoneCall, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, targets: [{ ticket }] });
  assert.equal(one.results[0].state, 'completed', JSON.stringify(one.results));
  const ids = [];
  for (let i = 0; i < 10; i++) ids.push((await srv.call('POST', '/api/v1/sign-flows', his, flow(`检验报告 GW1${i}`))).body.id);
  const pending = await srv.phoneCall('GET', '/mobile/v1/pending', me);
  assert.equal(pending.body.items.length, 10);
  const batch = await coSign(srv.phoneCall, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, targets: ids.map((flow_id) => ({ flow_id })) });
  assert.equal(batch.results.filter((r) => r.state === 'completed').length, 10, JSON.stringify(batch.results));
  // the HIS checks a signature at the server: valid
  const got = await srv.call('GET', `/api/v1/sign-flows/${ids[0]}`, his);
  assert.equal(got.body.state, 'completed');
});

test('a session grant is given through the gateway; the HIS then signs without the phone', async () => {
  const systems = await srv.phoneCall('GET', '/mobile/v1/systems', me);
  const hisApp = systems.body.items.find((s) => s.name === 'HIS');
  const started = await srv.phoneCall('POST', '/mobile/v1/grants', me, { app_id: hisApp.app_id, hours: 1 });
  assert.equal(started.status, 201, JSON.stringify(started.body));
  const sealed = await phone.sealForGrant({ post: mobilePost(srv.phoneCall, me), wrapped: key.wrapped, pin: PIN, deviceSecret: secret, publicKey: started.body.public_key, context: started.body.context });
  const active = await srv.phoneCall('POST', `/mobile/v1/grants/${started.body.grant_id}/share`, me, { sealed });
  assert.equal(active.body.state, 'active', JSON.stringify(active.body));
  const f = await srv.call('POST', '/api/v1/sign-flows', his, { kind: 'data', title: '医嘱 GW', content: 'NS 250ml ivgtt qd', signers: [{ employee_no: '1001' }] });
  assert.equal(f.body.state, 'completed', JSON.stringify(f.body));
  assert.equal(f.body.signers[0].custody, 'grant');
});

test('through the gateway the HIS API, documents and unknown fields are out of reach', async () => {
  const users = await srv.phoneCall('GET', '/api/v1/users', his);
  assert.equal(users.status, 404);
  const flows = await srv.call('GET', '/api/v1/sign-flows?limit=1', his);
  const id = flows.body?.items?.[0]?.id ?? 'sf_x';
  assert.equal((await srv.phoneCall('GET', `/api/v1/sign-flows/${id}/file`, his)).status, 404);
  // a field the phone API does not have: refused by the server's check of the opened call
  const extra = await srv.phoneCall('POST', '/mobile/v1/sign-rounds', me, { targets: [], content: '病历全文' });
  assert.equal(extra.status, 400);
  assert.equal(extra.body.code, 'e2e_invalid');
  // a plain call of the phone API is not forwarded: the gateway passes only sealed ones
  const plain = await fetch(`${srv.gateway}/mobile/v1/pending`, { headers: { Authorization: `Bearer ${me}` } });
  assert.equal(plain.status, 404);
  // a gateway posing as the server with its own channel key is refused by the pinned phone
  const c = await fetch(`${srv.gateway}/mobile/v1/channel`).then((r) => r.json());
  assert.equal(c.fingerprint, srv.phoneCall.pinned);
  const G = '0432c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0';
  await assert.rejects(phone.openChannel({ ...c, public_key: G }, srv.phoneCall.pinned), /pinned/);
  assert.ok(await phone.openChannel({ ...c, public_key: G }, ''), 'a valid point (the SM2 base point) opens without a pin');
  // the H5 app itself is served through the gateway, typed by the gateway
  const page = await fetch(`${srv.gateway}/m/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
});
