// node:test — fingerprint approval (WeChat SOTER, R3.9) through the real `medsign serve`, the
// JS wrapper and the wasm phone half. WeChat cannot be reached here, so the server talks to a local
// FAKE of WeChat's documented server API (`/cgi-bin/token`, `/sns/jscode2session`,
// `/cgi-bin/soter/verify_signature`), and a FAKE TEE stands in for `wx.startSoterAuthentication`:
// it assembles resultJSON around the challenge and signs it SHA256 with RSA/PSS, saltlen 20, as the
// documentation describes — here with Node's OpenSSL, independent of the Rust fake's `rsa` crate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { generateKeyPairSync, sign as rsaSign, verify as rsaVerify, constants } from 'node:crypto';
import * as phone from '../medsign-phone.js';
import { startServer, bindPhone, enrol, coSign, mobilePost } from '../testkit/server.mjs';

/** FAKE WeChat server (tests only): AppID wx_test / secret s3cret, login code `code-<openid>`. */
function fakeWechat() {
  const keys = new Map(); // openid → SOTER public key
  const seen = [];
  const token = 'AT_fake_node';
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const q = Object.fromEntries(url.searchParams);
    let body = '';
    for await (const c of req) body += c;
    const reply = (v) => { res.setHeader('Content-Type', 'application/json'); res.end(JSON.stringify(v)); };
    const creds = q.appid === 'wx_test' && q.secret === 's3cret';
    if (url.pathname === '/cgi-bin/token') {
      return reply(creds && q.grant_type === 'client_credential' ? { access_token: token, expires_in: 7200 } : { errcode: 40125, errmsg: 'invalid appsecret' });
    }
    if (url.pathname === '/sns/jscode2session') {
      if (!creds) return reply({ errcode: 40125, errmsg: 'invalid appsecret' });
      const openid = (q.js_code || '').startsWith('code-') ? q.js_code.slice(5) : null;
      return reply(openid ? { openid, session_key: 'sk' } : { errcode: 40029, errmsg: 'invalid code' });
    }
    if (url.pathname === '/cgi-bin/soter/verify_signature' && req.method === 'POST') {
      if (q.access_token !== token) return reply({ errcode: 40001, errmsg: 'invalid credential' });
      const b = JSON.parse(body);
      seen.push(b);
      if (typeof b.openid !== 'string' || typeof b.json_string !== 'string' || typeof b.json_signature !== 'string') {
        return reply({ errcode: 47001, errmsg: 'data format error' });
      }
      const key = keys.get(b.openid);
      const ok = !!key && rsaVerify('sha256', Buffer.from(b.json_string), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 }, Buffer.from(b.json_signature, 'base64'));
      return reply({ errcode: 0, errmsg: 'ok', is_ok: ok });
    }
    res.statusCode = 404;
    reply({ errcode: 404, errmsg: 'no such api' });
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ base: `http://127.0.0.1:${server.address().port}`, keys, seen, close: () => server.close() })));
}

/** FAKE TEE of a phone: what `wx.startSoterAuthentication` resolves to after a matching finger. */
function fakeTee(wechat, openid, cpuId) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  wechat.keys.set(openid, publicKey);
  let counter = 0;
  return async (challenge) => {
    const resultJSON = JSON.stringify({ raw: challenge, fid: '2', counter: ++counter, tee_n: 'FAKE TEE', tee_v: '1', fp_n: 'FAKE', fp_v: '1', cpu_id: cpuId, uid: '21' });
    const sig = rsaSign('sha256', Buffer.from(resultJSON), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 });
    return { resultJSON, resultJSONSignature: sig.toString('base64'), errCode: 0 };
  };
}

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
