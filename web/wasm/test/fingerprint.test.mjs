// node:test — fingerprint approval (WeChat SOTER, R3.9) through the real `medsign serve`, the
// JS wrapper and the wasm phone half. WeChat cannot be reached here, so the server talks to a local
// FAKE of WeChat's documented server API (`/cgi-bin/token`, `/sns/jscode2session`,
// `/cgi-bin/soter/verify_signature`), and a FAKE TEE stands in for `wx.startSoterAuthentication`:
// it assembles resultJSON around the challenge and signs it SHA256 with RSA/PSS, saltlen 20, as the
// documentation describes — here with Node's OpenSSL, independent of the Rust fake's `rsa` crate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as phone from '../medsign-phone.js';
import { startServer, bindPhone, enrol, coSign, mobilePost } from '../testkit/server.mjs';
import { fakeWechat, fakeTee } from '../testkit/wechat.mjs';

let srv, wechat, call, his, me, key, secret, soter;
const PIN = '135790';

before(async () => {
  wechat = await fakeWechat();
  srv = await startServer({ MEDSIGN_REALNAME_WECHAT_APPID: 'wx_test', MEDSIGN_REALNAME_WECHAT_SECRET: 's3cret', MEDSIGN_REALNAME_WECHAT_API_BASE: wechat.base });
  call = srv.call;
  const app = await call('POST', '/admin/v1/apps', srv.admin, { name: 'EMR', scopes: ['users:write', 'sign', 'verify'] });
  his = app.body.token;
  assert.equal((await call('POST', '/api/v1/users', his, [{ employee_no: '3001', name: '吴医生' }])).status, 201);
  me = await bindPhone(call, his, '3001');
  secret = phone.deviceSecret();
  key = await enrol(call, me, PIN, secret);
  soter = fakeTee(wechat, 'oWU3001', 'cpu-3001');
});

after(() => { srv?.stop(); wechat?.close(); });

const flow = (title) => ({ kind: 'data', title, content: `${title}：肝功能正常`, signers: [{ employee_no: '3001', mode: 'scan' }] });

test('fingerprint approval: enrolled with the PIN, then documents are co-signed with the fingerprint alone', async () => {
  const st = await call('GET', '/mobile/v1/soter', me);
  assert.deepEqual([st.status, st.body.available, st.body.enabled], [200, true, false]);
  const post = mobilePost(call, me);
  const fpCopy = await phone.enableFingerprint({ post, wrapped: key.wrapped, pin: PIN, deviceSecret: secret, wxCode: 'code-oWU3001', soter });
  assert.ok(!fpCopy.includes(key.wrapped.slice(-40)), 'a separate wrapping');
  assert.equal((await call('GET', '/mobile/v1/soter', me)).body.enabled, true);
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await call('POST', '/api/v1/sign-flows', his, flow(`检验报告 FP${i}`))).body.id);
  const before = wechat.seen.length;
  const { results } = await coSign(call, me, { deviceSecret: secret, targets: ids.map((flow_id) => ({ flow_id })), fingerprint: { wrapped: fpCopy, soter } });
  assert.deepEqual(results.map((r) => r.state), ['completed', 'completed', 'completed'], JSON.stringify(results));
  assert.equal(wechat.seen.length, before + 1, 'one fingerprint for the batch, verified by WeChat');
  assert.equal(wechat.seen.at(-1).openid, 'oWU3001');
  const p7s = await fetch(`${srv.base}/api/v1/sign-flows/${ids[0]}/file?signature=p7s`, { headers: { Authorization: `Bearer ${his}` } });
  const v = await call('POST', '/api/v1/verify/data', his, { signature: Buffer.from(await p7s.arrayBuffer()).toString('base64'), data: Buffer.from('检验报告 FP0：肝功能正常').toString('base64') });
  assert.equal(v.body.indication, 'TOTAL_PASSED', JSON.stringify(v.body));
  const logins = (await call('GET', '/mobile/v1/records', me)).body.logins.map((l) => `${l.action}:${l.outcome}`);
  assert.ok(logins.includes('soter.enrol:ok') && logins.includes('soter.unlock:ok'), logins.join(' '));

  // refusals: a finger WeChat does not confirm (another key), a replayed result, another phone
  const stranger = fakeTee(wechat, 'oSTRANGER', 'cpu-3001');
  const f = await call('POST', '/api/v1/sign-flows', his, flow('检验报告 FPX'));
  await assert.rejects(coSign(call, me, { deviceSecret: secret, targets: [{ flow_id: f.body.id }], fingerprint: { wrapped: fpCopy, soter: stranger } }), (e) => e.status === 401 && /4 attempts left/.test(e.message));
  let last;
  const recording = async (c) => (last = await soter(c));
  await phone.signMany({ post, deviceSecret: secret, digests: ['11'.repeat(32)], fingerprint: { wrapped: fpCopy, soter: recording } }).catch(() => {});
  const replay = await call('POST', '/mobile/v1/soter/unlock', me, { json_string: last.resultJSON, json_signature: last.resultJSONSignature });
  assert.equal(replay.status, 400, JSON.stringify(replay.body));
  assert.equal(replay.body.code, 'invalid_request');
  const otherPhone = fakeTee(wechat, 'oWU3001', 'cpu-OTHER');
  await assert.rejects(coSign(call, me, { deviceSecret: secret, targets: [{ flow_id: f.body.id }], fingerprint: { wrapped: fpCopy, soter: otherPhone } }), (e) => e.status === 403);
  // bad input
  assert.equal((await call('POST', '/mobile/v1/soter/challenges', me, { purpose: 'sign' })).status, 400);
  assert.equal((await call('POST', '/mobile/v1/soter/challenges', me, { purpose: 'unlock', approve: 'zz' })).status, 400);
  assert.equal((await call('POST', '/mobile/v1/soter/unlock', me, { json_string: 'x', json_signature: 'y' })).status, 400);
  const partial = await call('POST', '/mobile/v1/soter', me, { wx_code: 'code-oWU3001' });
  assert.deepEqual([partial.status, partial.body.code], [400, 'invalid_request'], JSON.stringify(partial.body));
  assert.equal((await call('POST', '/mobile/v1/soter/unlock', me, { json_string: '{}', json_signature: 'y', extra: 1 })).status, 400);
  // switched off on the phone: the fingerprint no longer opens anything, the PIN still does
  assert.equal((await call('DELETE', '/mobile/v1/soter', me)).status, 204);
  await assert.rejects(coSign(call, me, { deviceSecret: secret, targets: [{ flow_id: f.body.id }], fingerprint: { wrapped: fpCopy, soter } }), (e) => e.status === 409);
  const { results: byPin } = await coSign(call, me, { wrapped: key.wrapped, pin: PIN, deviceSecret: secret, targets: [{ flow_id: f.body.id }] });
  assert.equal(byPin[0].state, 'completed');
});

test('without a WeChat mini program configured, fingerprint approval says so (409)', async () => {
  const plain = await startServer();
  try {
    const app = await plain.call('POST', '/admin/v1/apps', plain.admin, { name: 'HIS', scopes: ['users:write'] });
    await plain.call('POST', '/api/v1/users', app.body.token, [{ employee_no: '1', name: '甲' }]);
    const s = await bindPhone(plain.call, app.body.token, '1');
    assert.equal((await plain.call('GET', '/mobile/v1/soter', s)).body.available, false);
    const r = await plain.call('POST', '/mobile/v1/soter/challenges', s, { purpose: 'enrol' });
    assert.equal(r.status, 409);
    assert.match(r.body.message, /微信小程序.*mini program/);
    // and no online real-name check either (identity is checked in person): 409, not a 500
    const rn = await plain.call('POST', '/mobile/v1/realname', s, {});
    assert.equal(rn.status, 409);
    assert.match(rn.body.message, /in person/);
  } finally {
    plain.stop();
  }
});
