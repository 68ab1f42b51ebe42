// medsign mini program — WeChat's platform for the phone core (core.js, shared with the H5 app):
// wx.request, WeChat's encrypted storage, WXWebAssembly, randomness from wx.getRandomValues, and the
// WeChat / WeCom identity, face, SOTER and scan calls. Nothing here holds a key: d1 lives inside
// WebAssembly and leaves it only wrapped under the PIN (or the fingerprint) and the device secret.
// Used by the mini program (utils/phone.js) and, copied by scripts/build-miniprogram, by the plugin.

/** The keys core.js stores (all kept in WeChat's encrypted storage). */
export const KEYS = ['token', 'employee', 'deviceSecret', 'wrapped', 'fingerprint', 'certSerial', 'channel', 'after'];

/** Call a `wx.*` API of the success/fail style as a promise. */
export function call(fn, args = {}) {
  return new Promise((resolve, reject) => fn({
    ...args,
    success: resolve,
    fail: (e) => reject(Object.assign(new Error(e?.errMsg || String(e)), { wx: e })),
  }));
}

// ---------------------------------------------------------------- what WeChat's JS lacks

/** UTF-8 without TextEncoder / TextDecoder (absent from some WeChat base libraries). */
class Utf8Encoder {
  encode(s = '') {
    const out = [];
    for (const ch of String(s)) {
      let c = ch.codePointAt(0);
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return Uint8Array.from(out);
  }
}

class Utf8Decoder {
  decode(bytes) {
    if (!bytes) return '';
    const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer || bytes);
    let s = '';
    for (let i = 0; i < b.length;) {
      const x = b[i];
      const n = x < 0x80 ? 1 : x >= 0xf0 ? 4 : x >= 0xe0 ? 3 : x >= 0xc0 ? 2 : 0;
      if (n === 0 || i + n > b.length) { s += '\ufffd'; i += 1; continue; }
      let c = n === 1 ? x : x & (0xff >> (n + 1));
      for (let k = 1; k < n; k++) c = (c << 6) | (b[i + k] & 63);
      s += String.fromCodePoint(c);
      i += n;
    }
    return s;
  }
}

/**
 * Randomness for WebAssembly: `crypto.getRandomValues` is synchronous, WeChat's
 * `wx.getRandomValues` is not. A pool filled from it before each operation ({@link entropy});
 * an empty pool throws — there is no weaker fallback.
 */
const pool = { bytes: new Uint8Array(0), at: 0 };

/** Bytes the pool holds after a refill: a 200-document batch takes about 7 KiB. */
const POOL = 64 * 1024;

/**
 * Fill the pool from `wx.getRandomValues` when fewer than `want` bytes are left (call before any
 * key operation: {@link ready} in utils/phone.js does).
 */
export async function entropy(wx, want = 16 * 1024) {
  if (!globalThis.__medsignWxPool || pool.bytes.length - pool.at >= want) return;
  const r = await call(wx.getRandomValues, { length: Math.max(POOL, want) });
  pool.bytes.fill(0);
  pool.bytes = new Uint8Array(r.randomValues);
  pool.at = 0;
}

/**
 * Install what the WebAssembly module's glue needs and WeChat may lack: TextEncoder/TextDecoder,
 * `crypto.getRandomValues` (from the pool), and `WebAssembly.instantiate` (through WXWebAssembly,
 * which loads a file of the package by its path: `wasmPath`).
 */
export function installGlobals(wx, wasmPath) {
  const g = globalThis;
  if (typeof g.TextEncoder === 'undefined') g.TextEncoder = Utf8Encoder;
  if (typeof g.TextDecoder === 'undefined') g.TextDecoder = Utf8Decoder;
  // inside WeChat the pool is always the source: whatever else set `crypto` is not trusted with
  // the key's nonces
  if (typeof g.WXWebAssembly !== 'undefined' || !g.crypto || typeof g.crypto.getRandomValues !== 'function') {
    g.__medsignWxPool = true;
    // fixed once set: nothing loaded later can swap in a weaker source (a predictable nonce of the
    // two-party signature would give the phone's share away)
    const source = Object.freeze({
      getRandomValues(buf) {
        const need = buf.length;
        if (pool.bytes.length - pool.at < need) throw new Error('随机数不足，请重试 / not enough randomness: try again');
        buf.set(pool.bytes.subarray(pool.at, pool.at + need));
        pool.bytes.fill(0, pool.at, pool.at + need);
        pool.at += need;
        return buf;
      },
    });
    try {
      Object.defineProperty(g, 'crypto', { value: source, writable: false, configurable: false, enumerable: true });
    } catch {
      throw new Error('无法安装随机数源，请重启小程序 / cannot install the randomness source: restart the mini program');
    }
  }
  if (typeof g.WXWebAssembly !== 'undefined') {
    const wx_ = g.WXWebAssembly;
    g.WebAssembly = {
      instantiate: (_ignored, imports) => wx_.instantiate(wasmPath, imports),
      Instance: wx_.Instance || class {},
      Module: wx_.Module || class {},
      Memory: wx_.Memory,
    };
  }
}

// ---------------------------------------------------------------- core.js's platform

/**
 * core.js's store over WeChat storage with `encrypt: true` (encrypted by WeChat with a key of its
 * own, as its documentation describes — not something the tests here can show; what the share
 * needs does not rest on it: it is wrapped under the PIN, the device secret and the server's
 * unlock secret). Reads are synchronous in core.js: the values are loaded once ({@link wxStore}'s
 * `ready`) and written through.
 */
export function wxStore(wx, prefix = 'medsign.') {
  const values = new Map();
  let failed = null;
  return {
    async ready() {
      // WeChat below base library 2.21.3 would store in the clear, silently
      if (!wx.canIUse || !wx.canIUse('setStorage.object.encrypt')) {
        throw new Error('微信版本过低，无法加密保存签名密钥，请升级微信 / this WeChat cannot store the key encrypted: update WeChat');
      }
      await Promise.all(KEYS.map((k) => call(wx.getStorage, { key: prefix + k, encrypt: true })
        .then((r) => { if (r.data != null && r.data !== '') values.set(k, String(r.data)); })
        .catch(() => {})));
    },
    /** Throws (once) when a write since the last check failed: the user must know the phone kept nothing. */
    check() {
      const why = failed;
      failed = null;
      if (why) throw new Error(`本机存储失败，请重试或重新绑定 / storing on this phone failed: ${why}`);
    },
    get: (k) => (values.has(k) ? values.get(k) : null),
    set(k, v) {
      if (v == null) {
        values.delete(k);
        wx.removeStorage({ key: prefix + k, fail: (e) => { failed = e.errMsg; } });
      } else {
        values.set(k, String(v));
        wx.setStorage({ key: prefix + k, data: String(v), encrypt: true, fail: (e) => { failed = e.errMsg; } });
      }
    },
  };
}

/** core.js's request over `wx.request`; the answer as text (the sealed envelope is JSON text). */
export function wxRequest(wx) {
  return ({ method, url, headers, body }) => new Promise((resolve, reject) => wx.request({
    url, method, header: headers || {}, data: body, dataType: 'text', responseType: 'text', timeout: 30000,
    success: (r) => resolve({ status: r.statusCode, text: typeof r.data === 'string' ? r.data : JSON.stringify(r.data) }),
    fail: (e) => reject(Object.assign(new Error(`网络不通 / no connection: ${e.errMsg}`), { status: 0, body: {} })),
  }));
}

// ---------------------------------------------------------------- WeChat / WeCom

/** Whether this runs inside WeCom (企业微信) rather than WeChat. */
export function inWeCom(wx) {
  try {
    return wx.getSystemInfoSync().environment === 'wxwork';
  } catch {
    return false;
  }
}

/** A WeCom login code, or nothing when this is not WeCom or the mini program is not linked to a WeCom app. */
export async function wecomCode(wx) {
  if (!inWeCom(wx) || !wx.qy?.login) return undefined;
  try {
    return (await call(wx.qy.login)).code;
  } catch {
    return undefined;
  }
}

/** A fresh login code: `wx.qy.login` in WeCom, `wx.login` in WeChat (the server exchanges it). */
export async function loginCode(wx) {
  const login = inWeCom(wx) && wx.qy?.login ? wx.qy.login : wx.login;
  return (await call(login)).code;
}

/** WeChat face verification (R3.2) for the server's `verify_id`. */
export function face(wx) {
  return (verifyId) => call(wx.requestFacialVerify, { verifyId });
}

/** WeChat SOTER fingerprint (R3.9): signs the server's challenge after a matching fingerprint. */
export function soter(wx) {
  // → { resultJSON, resultJSONSignature }, as medsign-phone.js takes it
  return (challenge) => call(wx.startSoterAuthentication, {
    requestAuthModes: ['fingerPrint'], challenge, authContent: '请验证指纹以确认 / confirm with your fingerprint',
  });
}

/** Scan a QR code with the camera only (an album picture could be anyone's). */
export async function scanCode(wx) {
  return (await call(wx.scanCode, { onlyFromCamera: true, scanType: ['qrCode'] })).result;
}
