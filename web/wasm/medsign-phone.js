// medsign — the phone's half of SM2 two-party signing (issue #7), for the H5 app and the WeChat
// mini program. A thin layer over the WebAssembly module (pkg/, made by scripts/build-wasm):
// the page gives a `post(path, body) → Promise<object>` transport (fetch in a browser, wx.request
// in the mini program), this module keeps d1 inside WebAssembly and stores it only wrapped under
// the PIN and the device secret.
//
//   await MedsignPhone.load(wasmBytesOrUrl)
//   const stored = await MedsignPhone.enrol({ post, context, pin, deviceSecret, certify, confirm })
//     → { publicKey, wrapped, certificate?, certifyError? }  (`certify`: the key answer's `csr_required` —
//     the active CA certifies only the key's own request; `confirm(commonName)` → boolean, optional)
//   const cert = await MedsignPhone.requestCertificate({ post, wrapped, pin, deviceSecret, confirm })  (retry)
//   const sig = await MedsignPhone.sign({ post, wrapped, pin, deviceSecret, e })  → signature (DER, hex)
//   const sigs = await MedsignPhone.signMany({ post, wrapped, pin, deviceSecret, digests })  → [signature]
//   const sealed = await MedsignPhone.sealForGrant({ post, wrapped, pin, deviceSecret, publicKey, context })
//   const cert = await MedsignPhone.renewCertificate({ post, wrapped, pin, deviceSecret, serial })
//   const rewrapped = await MedsignPhone.changePin({ post, wrapped, pin, newPin, deviceSecret })
//   const ch = await MedsignPhone.openChannel(channelAnswer, pinnedFingerprint)   (end-to-end channel)
//   const fpCopy = await MedsignPhone.enableFingerprint({ post, wrapped, pin, deviceSecret, wxCode, soter })
//   signMany / sign / sealForGrant also take `fingerprint: { wrapped: fpCopy, soter }` instead of `pin`
// `post(what, body)` goes to the server: 'keygen', 'pin' (POST /mobile/v1/pin), 'unlock'
// (POST /mobile/v1/unlock), 'sign' (POST /mobile/v1/sign-rounds/answers), 'certificate/csr',
// 'certificate/csr/answer', 'certificate/csr/finish' (POST /mobile/v1/<what>), and for the fingerprint
// 'soter/challenges', 'soter', 'soter/unlock' (POST /mobile/v1/<what>).
// `soter(challenge)` runs WeChat SOTER in the mini program and resolves to its result, e.g.
//   (challenge) => wx.startSoterAuthentication({ requestAuthModes: ['fingerPrint'], challenge,
//                    authContent: '确认签名' })   → { resultJSON, resultJSONSignature }

import init, { Channel, KeyGen, KeyShare, PinKey, checkPin, newDeviceSecret, readQr as readQrPixels, sm3 } from './pkg/medsign_wasm.js';

let ready = null;

/** Load the WebAssembly module once (bytes, a URL, or nothing: next to this file). */
export function load(source) {
  if (!ready) ready = init(source === undefined ? undefined : { module_or_path: source });
  return ready;
}

/** A fresh device secret (hex), made once when the phone is bound. */
export function deviceSecret() {
  return newDeviceSecret();
}

export { sm3 };

/** SM3 (hex) of `bytes`, loading the module first if needed. @param {Uint8Array} bytes */
export async function sm3Hex(bytes) {
  await load();
  return sm3(bytes);
}

/**
 * The end-to-end channel to the hospital's servers (issue #17): `channel` is the answer of
 * `GET /mobile/v1/channel`, `pinned` the fingerprint this phone pinned ('' before it has one).
 * Throws when the key is not the pinned one and its `history` does not lead there from the pinned
 * key by endorsements (a rotation); pin `ch.fingerprint` afterwards. `ch.seal(JSON.stringify({ ts, method, path, auth,
 * body }))` → a call whose `body` is POSTed to /mobile/v1/sealed and whose `open(answerJson)`
 * gives the JSON `{ status, body }` of the call (then `free()` it).
 */
export async function openChannel(channel, pinned) {
  await load();
  return new Channel(channel.public_key, pinned || '', JSON.stringify(channel.history || []));
}

/**
 * What an approval is bound to (issue #15): SM3, hex, of `medsign-approve-v1|<purpose>|<what>` —
 * `sign` with the rounds' `e` values joined by `,`, `grant` with the grant's context, `renew`
 * with the certificate serial. The server recomputes it from the request the approval is used for.
 */
export function approvalDigest(purpose, what) {
  return sm3(new TextEncoder().encode(`medsign-approve-v1|${purpose}|${what}`));
}

/**
 * Two-party key generation: the phone picks d1 and proves it; the server answers with its proof
 * and the joint public key, which this side checks. Then the PIN is set — only its verifier goes to
 * the server (`post('pin', { verifier })` → { unlock_secret }) — and the share is wrapped under the
 * PIN, the device secret and that unlock secret. Returns the public key and the wrapped share to
 * store (localStorage, wx.setStorage). `post('keygen', request)` must return the server's answer.
 */
export async function enrol({ post, context, pin, deviceSecret, certify, confirm }) {
  await load();
  const kg = new KeyGen(context);
  try {
    const response = await post('keygen', JSON.parse(kg.request));
    const share = kg.finish(JSON.stringify(response));
    const pinKey = PinKey.create(pin, deviceSecret);
    try {
      const { unlock_secret } = await post('pin', { verifier: pinKey.verifier });
      const out = { publicKey: share.publicKey, wrapped: share.wrap(pinKey, unlock_secret) };
      if (typeof certify === 'function' ? certify() : certify) {
        // the key is kept whatever the CA says (down, pending approval): certify it later with
        // requestCertificate; the error is returned, not thrown, so the caller stores `wrapped`
        try {
          out.certificate = await certifyShare(post, share, confirm);
        } catch (e) {
          out.certifyError = e;
        }
      }
      return out;
    } finally {
      pinKey.free();
      share.free();
    }
  } finally {
    kg.free();
  }
}

/**
 * Open the stored share with the PIN, approving `approve` (see {@link approvalDigest}): the
 * entered PIN's verifier goes to the server (`post('unlock', { verifier, approve })` →
 * { unlock_secret }), which counts wrong PINs and locks after five in a row; a wrong PIN is
 * refused there, before any signing request is sent. A match also records a one-time approval of
 * `approve` for this device, without which the server answers no signing round, activates no
 * grant and renews no certificate.
 * Or with the fingerprint (`fingerprint: { wrapped, soter }`, mini program): a one-time server
 * challenge naming `approve` is signed by SOTER after a matching fingerprint; the server releases
 * the fingerprint secret (and approves) only for that result, verified by WeChat.
 */
async function openShare(post, { wrapped, pin, deviceSecret, fingerprint, approve }) {
  if (fingerprint) {
    const c = await post('soter/challenges', { purpose: 'unlock', approve });
    const r = await fingerprint.soter(c.challenge);
    const { unlock_secret } = await post('soter/unlock', { json_string: r.resultJSON, json_signature: r.resultJSONSignature });
    return KeyShare.unwrapFingerprint(fingerprint.wrapped, deviceSecret, unlock_secret);
  }
  const pinKey = PinKey.forWrapped(wrapped, pin, deviceSecret);
  try {
    const { unlock_secret } = await post('unlock', { verifier: pinKey.verifier, approve });
    return KeyShare.unwrap(wrapped, pinKey, unlock_secret);
  } finally {
    pinKey.free();
  }
}

/**
 * Switch fingerprint approval on (R3.9; WeChat mini program): SOTER signs an `enrol` challenge,
 * the server checks it with WeChat (`wxCode` from `wx.login` gives the openid) together with the
 * PIN, and returns the fingerprint secret; the share (opened once with the PIN's secret from the
 * same answer) is wrapped a second time under the device secret and that fingerprint secret.
 * Returns the fingerprint copy to store beside the PIN copy.
 */
export async function enableFingerprint({ post, wrapped, pin, deviceSecret, wxCode, soter }) {
  await load();
  const pinKey = PinKey.forWrapped(wrapped, pin, deviceSecret);
  try {
    const c = await post('soter/challenges', { purpose: 'enrol' });
    const r = await soter(c.challenge);
    const on = await post('soter', {
      current_verifier: pinKey.verifier, wx_code: wxCode, json_string: r.resultJSON, json_signature: r.resultJSONSignature,
    });
    const share = KeyShare.unwrap(wrapped, pinKey, on.unlock_secret);
    try {
      return share.wrapFingerprint(deviceSecret, on.fingerprint_secret);
    } finally {
      share.free();
    }
  } finally {
    pinKey.free();
  }
}

/**
 * Change the PIN (R3.9): the server checks the current PIN's verifier, stores the new one and hands
 * back the old and the new unlock secret (`post('pin', { verifier, current_verifier })`); the share
 * is re-wrapped. Returns the new wrapped share to store.
 */
export async function changePin({ post, wrapped, pin, newPin, deviceSecret }) {
  await load();
  const current = PinKey.forWrapped(wrapped, pin, deviceSecret);
  const next = PinKey.create(newPin, deviceSecret);
  try {
    const r = await post('pin', { verifier: next.verifier, current_verifier: current.verifier });
    const share = KeyShare.unwrap(wrapped, current, r.previous_unlock_secret);
    try {
      return share.wrap(next, r.unlock_secret);
    } finally {
      share.free();
    }
  } finally {
    current.free();
    next.free();
  }
}

/**
 * Signatures over each of `digests` (hex `e` values the server prepared for documents the user
 * saw — one scanned document, or a doctor's pending list) with one PIN entry: d1 is unwrapped once,
 * for this call only; all signing requests go in one `post('sign', requests)`, which must return
 * the server's answers in the same order (POST /mobile/v1/sign-rounds/answers); each signature is
 * released only if it verifies against the joint public key.
 */
export async function signMany({ post, wrapped, pin, deviceSecret, digests, fingerprint }) {
  await load();
  const approve = approvalDigest('sign', digests.map((e) => e.toLowerCase()).join(','));
  const share = await openShare(post, { wrapped, pin, deviceSecret, fingerprint, approve });
  const sessions = [];
  try {
    for (const e of digests) sessions.push(share.beginSign(e));
    const responses = await post('sign', sessions.map((s) => JSON.parse(s.request)));
    if (!Array.isArray(responses) || responses.length !== sessions.length) {
      throw new Error('服务器应答数量不符 / the server answered a different number of requests');
    }
    return sessions.map((s, i) => s.finish(JSON.stringify(responses[i])));
  } finally {
    for (const s of sessions) s.free();
    share.free();
  }
}

/** One two-party signature over `e` (see signMany). */
export async function sign({ post, wrapped, pin, deviceSecret, e, fingerprint }) {
  return (await signMany({ post, wrapped, pin, deviceSecret, digests: [e], fingerprint }))[0];
}

/**
 * Session authorization (R3.5): after the PIN, seal d1 to the grant key the server made for this
 * grant (`POST /mobile/v1/grants` → { public_key, context }); the result goes to
 * `POST /mobile/v1/grants/{grant_id}/share`. d1 leaves the phone only sealed to that grant's key,
 * which the server erases when the grant is cancelled or expires.
 */
export async function sealForGrant({ post, wrapped, pin, deviceSecret, publicKey, context, fingerprint }) {
  await load();
  const approve = approvalDigest('grant', context);
  const share = await openShare(post, { wrapped, pin, deviceSecret, fingerprint, approve });
  try {
    return share.sealTo(publicKey, context);
  } finally {
    share.free();
  }
}

/**
 * The key's own certification request, signed by phone and server together (issue #17), so any
 * CA — the built-in one or an outside CA over EST — certifies the key from a PKCS#10 signed by it:
 * `post('certificate/csr', {})` → { info, subject } (CertificationRequestInfo, hex); the WebAssembly
 * side signs it only if it is for this phone's own key with no attributes, and computes its digest
 * itself; `post('certificate/csr/answer', { request })` → the server's half;
 * `post('certificate/csr/finish', { signature })` → the certificate.
 */
async function certifyShare(post, share, confirm) {
  const r = await post('certificate/csr', {});
  const session = share.beginCertRequest(r.info);
  try {
    // the name the request certifies, read from what is signed, for the doctor to confirm
    if (confirm && !(await confirm(session.subject))) throw new Error('已取消证书申请 / the certificate request was cancelled');
    const response = await post('certificate/csr/answer', { request: JSON.parse(session.request) });
    const signature = session.finish(JSON.stringify(response));
    return await post('certificate/csr/finish', { signature });
  } finally {
    session.free();
  }
}

/**
 * Renew the certificate `serial` of this phone's key (R5.5), approved with the PIN or the
 * fingerprint: the share is opened and signs the key's certification request with the server
 * (see certifyShare; the server takes the approval of `renew|serial` with its half). Returns the
 * new certificate; the old one is revoked as superseded.
 */
export async function renewCertificate({ post, wrapped, pin, deviceSecret, serial, fingerprint, confirm }) {
  await load();
  const share = await openShare(post, { wrapped, pin, deviceSecret, fingerprint, approve: approvalDigest('renew', serial) });
  try {
    return await certifyShare(post, share, confirm);
  } finally {
    share.free();
  }
}

/**
 * The first certificate of an enrolled key whose certification did not finish at enrolment (the
 * key answer said `csr_required` and the CA was down or the doctor cancelled): the share is opened
 * with the PIN and signs the key's request with the server (see certifyShare). Returns the
 * certificate.
 */
export async function requestCertificate({ post, wrapped, pin, deviceSecret, confirm }) {
  await load();
  const share = await openShare(post, { wrapped, pin, deviceSecret, approve: approvalDigest('certify', '') });
  try {
    return await certifyShare(post, share, confirm);
  } finally {
    share.free();
  }
}

/**
 * Approve something that is not a signature with the PIN or the fingerprint (the share is opened
 * and closed again): `purpose` and `what` as in {@link approvalDigest} — e.g. `handwriting` with the
 * SM3 (hex) of the PNG the doctor drew, before `POST /mobile/v1/handwriting`.
 */
export async function approve({ post, wrapped, pin, deviceSecret, fingerprint, purpose, what }) {
  await load();
  const share = await openShare(post, { wrapped, pin, deviceSecret, fingerprint, approve: approvalDigest(purpose, what) });
  share.free();
}

/**
 * The text of a QR code in a camera frame (`ctx.getImageData(…)` of a canvas the video was drawn
 * on), or null — for browsers without `BarcodeDetector`. Decoded in WebAssembly.
 */
export async function readQr({ data, width, height }) {
  await load();
  return readQrPixels(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height) ?? null;
}

/**
 * The PIN rules (R3.9), checked here before a PIN is set (the PIN never leaves the phone):
 * `null` when acceptable, otherwise the reason in Chinese / English.
 */
export async function pinProblem(pin, employeeNo, { minLength = 6, maxLength = 12 } = {}) {
  await load();
  return checkPin(pin, employeeNo, minLength, maxLength) ?? null;
}
