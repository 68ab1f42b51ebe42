// @ts-check
// medsign — the doctor's phone without its screen: the mobile API over the end-to-end channel and
// the flows every phone front end runs. One implementation for the H5 app (/m/, tested in
// Chromium) and the WeChat mini program (miniprogram/, which copies this file with
// scripts/build-miniprogram; tested under Node through a recording `wx`).
//
//   const p = createPhone({ base, request, store })
//     base     the mobile API's URL, ending in /mobile/v1/
//     request  ({ method, url, headers, body }) → Promise<{ status, text }>   (fetch, wx.request)
//     store    { get(k) → string | null, set(k, v | null) }                 (localStorage, wx storage)
//
// What it stores: token, employee, deviceSecret, wrapped (the share under PIN + device secret),
// certSerial, channel (the pinned fingerprint of the servers' channel key).
import * as phone from './medsign-phone.js';
import { scanned } from './links.js';

export { scanned };

/** An API error: the server's message, the HTTP status and the JSON envelope. @typedef {Error & { status: number, body: any }} ApiError */

/** @typedef {{ get(k: string): string | null, set(k: string, v: string | null | undefined): void }} Store */
/** @typedef {(r: { method: string, url: string, headers?: Record<string, string>, body?: string }) => Promise<{ status: number, text: string }>} Request */

/**
 * @param {number} status
 * @param {string} text
 * @returns {ApiError}
 */
function envelopeOf(status, text) {
  let data = {};
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  // `clear`: said in the clear, so possibly by anyone on the way (the gateway, a proxy) — never
  // taken as the hospital's word
  return Object.assign(new Error(data.message || `HTTP ${status}`), { status, body: data, clear: true });
}

/**
 * Base64 of `bytes` (no btoa in WeChat's JavaScript).
 * @param {Uint8Array} bytes
 */
export function base64(bytes) {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const [a, b = 0, c = 0] = [bytes[i], bytes[i + 1], bytes[i + 2]];
    const n = (a << 16) | (b << 8) | c;
    out += A[n >> 18] + A[(n >> 12) & 63] + (i + 1 < bytes.length ? A[(n >> 6) & 63] : '=') + (i + 2 < bytes.length ? A[n & 63] : '=');
  }
  return out;
}

/**
 * @param {{ base: string, request: Request, store: Store }} platform
 */
export function createPhone({ base, request, store }) {
  /** The end-to-end channel (its key checked against the pin) and the server's clock offset. */
  let channel = null;

  async function channelOf() {
    if (channel) return channel;
    const res = await request({ method: 'GET', url: base + 'channel' });
    if (res.status !== 200) throw envelopeOf(res.status, res.text);
    const c = JSON.parse(res.text);
    const ch = await phone.openChannel(c, store.get('channel') || '');
    // the first key seen is pinned unless the activation link brought the pin; after a rotation
    // the new key, which the pinned one endorsed
    if (store.get('channel') !== ch.fingerprint) store.set('channel', ch.fingerprint);
    channel = { ch, kid: ch.fingerprint.slice(0, 16), offset: c.server_time_ms - Date.now() };
    return channel;
  }

  /**
   * Call the mobile API, end-to-end encrypted (issue #17): the call is sealed to the hospital
   * servers' pinned channel key and POSTed to `sealed`, so a DMZ gateway forwards what it cannot
   * read; the answer opens only here. Throws an {@link ApiError}; a `session_invalid` answer also
   * drops the stored token.
   * @param {string} method
   * @param {string} path relative to the base
   * @param {unknown} [body] sent as JSON when given
   * @returns {Promise<any>} the parsed JSON, or null for 204
   */
  async function api(method, path, body) {
    for (let attempt = 0; ; attempt++) {
      const ch = await channelOf();
      const call = ch.ch.seal(JSON.stringify({
        ts: Date.now() + ch.offset, method, path: `/mobile/v1/${path}`, auth: store.get('token') || null, body: body === undefined ? null : body,
      }));
      let answer;
      try {
        const res = await request({ method: 'POST', url: base + 'sealed', headers: { 'Content-Type': 'application/json' }, body: call.body });
        // a refusal in the clear (busy, no tunnel, replay, a key the server does not have) is never
        // retried here: it may come from anyone on the way, and a replayed call may have been done;
        // a key the server no longer has makes the next call read the channel again
        if (res.status !== 200) {
          const e = envelopeOf(res.status, res.text);
          if (e.body?.code === 'e2e_key_changed') channel = null;
          throw e;
        }
        answer = JSON.parse(call.open(res.text));
      } finally { call.free(); }
      const { status, body: data, time_ms: serverTime, kid } = answer;
      // the servers rotated their key: the next call reads the channel and follows the endorsement
      if (typeof kid === 'string' && kid !== ch.kid) channel = null;
      // the server's clock, sealed: only this corrects the phone's once calls flow
      if (typeof serverTime === 'number') ch.offset = serverTime - Date.now();
      if (status >= 200 && status < 300) return data ?? null;
      if (data?.code === 'e2e_stale' && attempt === 0) continue;
      if (data?.code === 'session_invalid') store.set('token', null);
      throw Object.assign(new Error(data?.message || `HTTP ${status}`), { status, body: data || {} });
    }
  }

  /**
   * medsign-phone.js transport over the mobile API (pin, unlock, sign with open rounds).
   * @param {{ round_id: string }[]} [rounds] the open sign rounds, in the order of the digests
   * @returns {(what: string, body: any) => Promise<any>}
   */
  function transport(rounds = []) {
    return async (what, body) => {
      if (what === 'sign') {
        const answers = body.map((request, i) => ({ round_id: rounds[i].round_id, request }));
        return (await api('POST', 'sign-rounds/answers', { answers })).responses;
      }
      return api('POST', what, body);
    };
  }

  /** What opens the share: the PIN, or the fingerprint copy with WeChat SOTER. @typedef {{ pin: string } | { fingerprint: { soter: (challenge: string) => Promise<any> } }} Approval */

  /** @param {Approval} how */
  const opener = (how) => ('pin' in how
    ? { pin: how.pin }
    : { fingerprint: { wrapped: store.get('fingerprint'), soter: how.fingerprint.soter } });
  const held = () => ({ wrapped: store.get('wrapped'), deviceSecret: store.get('deviceSecret') });

  return {
    store, api, transport,

    /**
     * Trust another channel key than the pinned one — only on the doctor's word that the
     * hospital's IT department gave them this activation link in person (the servers' old key was
     * compromised, so the chain of endorsements is broken). The session ends: activate again.
     * @param {string} fingerprint the link's `k`
     */
    repin(fingerprint) {
      if (!/^[0-9a-f]{64}$/.test(fingerprint)) throw new Error('服务器指纹格式不对 / not a channel fingerprint');
      store.set('channel', fingerprint);
      store.set('token', null);
      channel = null;
    },

    /**
     * Read the channel again, following endorsements from the pin (an ordinary rotation); the
     * pinned fingerprint afterwards. Throws when the servers' key does not follow from the pin.
     */
    async follow() {
      channel = null;
      await channelOf();
      return store.get('channel');
    },

    /**
     * Bind this phone: staff number + one-time activation code → a session; a fresh device secret.
     * Inside WeCom, `wecomCode` (a fresh `wx.qy.login` code) adds the employee's own WeCom login.
     * @param {{ employeeNo: string, code: string, deviceName: string, wecomCode?: string }} a
     */
    async activate({ employeeNo, code, deviceName, wecomCode }) {
      const body = { employee_no: employeeNo, code, device_name: deviceName };
      const s = await api('POST', 'activate', wecomCode ? { ...body, wecom_code: wecomCode } : body);
      store.set('token', s.token);
      store.set('employee', s.employee_no);
      store.set('deviceSecret', phone.deviceSecret());
      for (const k of ['wrapped', 'fingerprint', 'certSerial']) store.set(k, null);
      return s;
    },

    /**
     * The real-name check (R2.2, R3.2): `face(verifyId)` runs WeChat's face verification in the mini
     * program (`wx.requestFacialVerify`); the DEMO provider needs none.
     * @param {{ wxCode?: string, face?: (verifyId: string) => Promise<unknown> }} [how]
     * @returns {Promise<{ demo: boolean }>}
     */
    async realname(how = {}) {
      const st = await api('POST', 'realname', how.wxCode ? { wx_code: how.wxCode } : {});
      if (st.provider === 'wechat') {
        if (!how.face) throw new Error('请在医签微信小程序中完成人脸核身 / do the face check in the medsign WeChat mini program');
        await how.face(st.verify_id);
      }
      const out = await api('POST', `realname/${st.check_id}`);
      if (out.state !== 'verified') throw new Error('实名认证未通过 / the real-name check failed');
      return { demo: !!st.demo };
    },

    /**
     * Two-party key generation, the PIN and the certificate. `confirm(name)` approves the name an
     * outside CA will certify. Returns the enrolment's outcome (`certifyError` when the key exists
     * but its certificate is still to come).
     * @param {string} pin
     * @param {(name: string) => boolean | Promise<boolean>} confirm
     */
    async createKey(pin, confirm) {
      const start = await api('POST', 'keys');
      let certificate = /** @type {{ serial?: string } | null} */ (null);
      let csrRequired = false;
      const post = async (what, body) => {
        if (what !== 'keygen') return transport()(what, body);
        const r = await api('POST', `keys/${start.key_id}`, { request: body });
        certificate = r.certificate;
        csrRequired = r.csr_required === true;
        return r.response;
      };
      // an outside CA (EST) certifies the key only from its own request: phone and server sign it
      const out = await phone.enrol({ post, context: start.context, pin, deviceSecret: store.get('deviceSecret'), certify: () => csrRequired, confirm });
      store.set('wrapped', out.wrapped);
      store.set('certSerial', (out.certificate || certificate)?.serial || '');
      return out;
    },

    /**
     * Ask again for the certificate of a key that has none yet.
     * @param {string} pin
     * @param {(name: string) => boolean | Promise<boolean>} confirm
     */
    async requestCertificate(pin, confirm) {
      const cert = await phone.requestCertificate({ post: transport(), ...held(), pin, confirm });
      store.set('certSerial', cert.serial);
      return cert;
    },

    /**
     * The handwritten signature: the doctor approves this very image (its SM3) with the PIN, so a
     * stolen session cannot replace it.
     * @param {Uint8Array} png
     * @param {string} pin
     */
    async saveHandwriting(png, pin) {
      await phone.approve({ post: transport(), ...held(), pin, purpose: 'handwriting', what: await phone.sm3Hex(png) });
      await api('POST', 'handwriting', { image_base64: base64(png) });
    },

    /**
     * Open sign rounds for scanned tickets or waiting flows.
     * @param {({ ticket: string } | { flow_id: string })[]} targets
     * @returns {Promise<any[]>}
     */
    async openRounds(targets) {
      return (await api('POST', 'sign-rounds', { targets })).rounds;
    },

    /**
     * The document itself (R2.4), made on the server from exactly what the round signs and carried
     * end-to-end encrypted: `text` (checked here against the summary's SM3: `matches`), or `pages`;
     * `hidden` when the hospital shows the summary only.
     * @param {any} round
     * @returns {Promise<{ hidden?: boolean, text?: string, pages?: string[], truncated?: boolean, matches: boolean }>}
     */
    async view(round) {
      let v;
      try {
        v = await api('GET', `sign-rounds/${round.round_id}/view`);
      } catch (e) {
        // the hospital's summary-only setting comes inside the sealed answer; a 403 in the clear
        // could be the gateway's and must not let a document be signed unseen
        if (e.status === 403 && !e.clear) return { hidden: true, matches: true };
        throw e;
      }
      if (v.text != null) {
        const matches = (await phone.sm3Hex(new TextEncoder().encode(v.text))) === round.summary.content_sm3;
        return { text: v.text, truncated: v.truncated, matches };
      }
      return { pages: v.pages || undefined, truncated: v.truncated, matches: true };
    },

    /**
     * Sign open rounds with one approval; per-document results.
     * @param {{ round_id: string, e: string }[]} rounds
     * @param {Approval} how
     * @returns {Promise<any[]>}
     */
    async signRounds(rounds, how) {
      const sigs = await phone.signMany({ post: transport(rounds), ...held(), ...opener(how), digests: rounds.map((r) => r.e) });
      const signatures = sigs.map((signature, i) => ({ round_id: rounds[i].round_id, signature }));
      return (await api('POST', 'sign-rounds/signatures', { signatures })).results;
    },

    /**
     * A session grant: `appId` signs without the phone for `hours`.
     * @param {{ appId: string, hours: number }} g
     * @param {Approval} how
     */
    async grant({ appId, hours }, how) {
      const start = await api('POST', 'grants', { app_id: appId, hours });
      const sealed = await phone.sealForGrant({ post: transport(), ...held(), ...opener(how), publicKey: start.public_key, context: start.context });
      await api('POST', `grants/${start.grant_id}/share`, { sealed });
      return start;
    },

    /**
     * @param {string} oldPin
     * @param {string} newPin
     */
    async changePin(oldPin, newPin) {
      store.set('wrapped', await phone.changePin({ post: transport(), ...held(), pin: oldPin, newPin }));
    },

    /**
     * Fingerprint approval (WeChat SOTER, R3.9), switched on with the PIN: a second copy of the share
     * that opens with the fingerprint's signed answer instead.
     * @param {string} pin
     * @param {string} wxCode a fresh `wx.login` code
     * @param {(challenge: string) => Promise<any>} soter runs `wx.startSoterAuthentication`
     */
    async enableFingerprint(pin, wxCode, soter) {
      store.set('fingerprint', await phone.enableFingerprint({ post: transport(), ...held(), pin, wxCode, soter }));
    },

    /** Unbind: the server revokes the key and certificate; this phone forgets everything. */
    async unbind() {
      await api('DELETE', 'device');
      for (const k of ['token', 'wrapped', 'fingerprint', 'deviceSecret', 'certSerial']) store.set(k, null);
    },
  };
}
