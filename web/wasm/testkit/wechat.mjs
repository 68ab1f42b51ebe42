// A local FAKE of WeChat's documented server API, for the Node tests (tests only; named as a fake:
// WeChat cannot be reached here). The server talks to it through
// MEDSIGN_REALNAME_WECHAT_API_BASE. It checks what the documentation requires — AppID and secret,
// the access token, the identity fields — and:
//   /cgi-bin/token, /sns/jscode2session (login code `code-<openid>`),
//   /cityservice/face/identify/getverifyid, …/queryverifyinfo (WeChat face verification: passes
//     only a verify_id the phone ran `wx.requestFacialVerify` on — `faced(verifyId)` — and whose
//     cert_hash, computed here independently, matches the identity given at getverifyid),
//   /cgi-bin/soter/verify_signature (RSASSA-PSS SHA-256, salt 20, by the key the user's phone
//     registered with `fakeTee`);
// and of WeCom's (企业微信; point MEDSIGN_REALNAME_WECOM_API_BASE here too): /cgi-bin/gettoken (corp
//   ww_test, secret c0rp), /cgi-bin/miniprogram/jscode2session (code `wecom-<userid>` is a user of
//   ww_test, `wecomx-<userid>` one of another corp; `rotateWecom()` makes the token in use invalid,
//   as when another client fetched a new one).
import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, sign as rsaSign, verify as rsaVerify, constants } from 'node:crypto';

/** cert_hash as the face-verification documentation defines it. */
function certHash(info) {
  const b64 = (s) => Buffer.from(String(s)).toString('base64');
  return createHash('sha256').update(`cert_type=${b64(info.cert_type)}&cert_name=${b64(info.cert_name)}&cert_no=${b64(info.cert_no)}`).digest('hex');
}

/** FAKE WeChat server (tests only): AppID wx_test / secret s3cret. */
export function fakeWechat() {
  const keys = new Map(); // openid → SOTER public key
  const verifications = new Map(); // verify_id → { openid, out_seq_no, cert_hash, faced }
  const seen = [];
  const wecomSeen = [];
  let wecomToken = 'AT_wecom';
  const token = 'AT_fake_node';
  let next = 0;
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
    if (url.pathname === '/cgi-bin/gettoken') {
      return reply(q.corpid === 'ww_test' && q.corpsecret === 'c0rp' ? { errcode: 0, access_token: wecomToken, expires_in: 7200 } : { errcode: 40001, errmsg: 'invalid secret' });
    }
    if (url.pathname === '/cgi-bin/miniprogram/jscode2session') {
      if (q.access_token !== wecomToken) return reply({ errcode: 40014, errmsg: 'invalid access_token' });
      wecomSeen.push(q.js_code);
      const m = /^(wecom|wecomx)-(\w+)$/.exec(q.js_code || '');
      if (!m || q.grant_type !== 'authorization_code') return reply({ errcode: 40029, errmsg: 'invalid code' });
      return reply({ errcode: 0, errmsg: 'ok', corpid: m[1] === 'wecom' ? 'ww_test' : 'ww_other', userid: m[2], session_key: 'sk' });
    }
    if (req.method !== 'POST') { res.statusCode = 404; return reply({ errcode: 404, errmsg: 'no such api' }); }
    if (q.access_token !== token) return reply({ errcode: 40001, errmsg: 'invalid credential' });
    let b;
    try { b = JSON.parse(body); } catch { return reply({ errcode: 47001, errmsg: 'data format error' }); }
    seen.push(b);
    if (url.pathname === '/cityservice/face/identify/getverifyid') {
      const c = b.cert_info || {};
      if (typeof b.openid !== 'string' || typeof b.out_seq_no !== 'string' || c.cert_type !== 'IDENTITY_CARD' || !c.cert_name || !c.cert_no) {
        return reply({ errcode: 47001, errmsg: 'data format error' });
      }
      const verifyId = `vid_${++next}_${b.out_seq_no}`;
      verifications.set(verifyId, { openid: b.openid, out_seq_no: b.out_seq_no, cert_hash: certHash(c), faced: false });
      return reply({ errcode: 0, errmsg: 'ok', verify_id: verifyId });
    }
    if (url.pathname === '/cityservice/face/identify/queryverifyinfo') {
      const v = verifications.get(b.verify_id);
      if (!v) return reply({ errcode: 40013, errmsg: 'invalid verify_id' });
      const same = v.openid === b.openid && v.out_seq_no === b.out_seq_no && v.cert_hash === b.cert_hash;
      return reply({ errcode: 0, errmsg: 'ok', verify_ret: same && v.faced ? 10000 : 90000 });
    }
    if (url.pathname === '/cgi-bin/soter/verify_signature') {
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
  /** The phone ran WeChat's face verification on `verifyId` and the face matched. */
  const faced = (verifyId) => {
    const v = verifications.get(verifyId);
    if (!v) return false;
    v.faced = true;
    return true;
  };
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ base: `http://127.0.0.1:${server.address().port}`, keys, seen, wecomSeen, faced, rotateWecom: () => { wecomToken = `AT_wecom_${Date.now()}`; }, close: () => server.close() })));
}

/** FAKE TEE of a phone: what `wx.startSoterAuthentication` resolves to after a matching finger. */
export function fakeTee(wechat, openid, cpuId) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  wechat.keys.set(openid, publicKey);
  let counter = 0;
  return async (challenge) => {
    const resultJSON = JSON.stringify({ raw: challenge, fid: '2', counter: ++counter, tee_n: 'FAKE TEE', tee_v: '1', fp_n: 'FAKE', fp_v: '1', cpu_id: cpuId, uid: '21' });
    const sig = rsaSign('sha256', Buffer.from(resultJSON), { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 });
    return { resultJSON, resultJSONSignature: sig.toString('base64'), errCode: 0 };
  };
}
