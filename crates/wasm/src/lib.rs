//! # medsign-wasm — the phone's half (issue #7, R3.8, R5.4)
//!
//! The client side of SM2 two-party signing ([`medsign_crypto::twoparty`]) and the wrapping of its
//! share `d1`, for WebAssembly: the H5 app and the mini program load `web/wasm/medsign_wasm.js`
//! (made by `scripts/build-wasm`). The full key never exists; `d1` leaves this module only wrapped
//! (SM4-GCM under a key from Argon2id(PIN) combined with the device secret), and a signature is
//! released only after it verifies against the joint public key.
//!
//! Messages are the protocol's JSON (hex fields), so the JavaScript side only moves strings:
//! ```text
//! const kg = new KeyGen(context);   POST kg.request → response
//! const share = kg.finish(response);  share.publicKey (hex)   share.wrap(pin, deviceSecretHex) → stored
//! const s = KeyShare.unwrap(stored, pin, deviceSecretHex).beginSign(eHex);  POST s.request → response
//! s.finish(response) → signature (hex DER)
//! ```
//! Errors are thrown as `Error` with a Chinese / English message.

#![forbid(unsafe_code)]

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use medsign_crypto::twoparty::{self, ClientKeyGen, ClientKeyShare, ClientSignSession};
use medsign_crypto::wrap::{PinKdfParams, PinKey as CryptoPinKey, biometric_kek};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// An error for JavaScript (`Error` with the message).
#[derive(Debug, Clone, PartialEq)]
pub struct WasmError(pub String);

impl From<WasmError> for JsValue {
    fn from(e: WasmError) -> JsValue {
        JsError::new(&e.0).into()
    }
}

impl From<medsign_crypto::Error> for WasmError {
    fn from(e: medsign_crypto::Error) -> Self {
        WasmError(e.to_string())
    }
}

type Result<T> = std::result::Result<T, WasmError>;

fn bad(m: &str) -> WasmError {
    WasmError(m.to_string())
}

fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| WasmError(format!("{what} 格式错误 / malformed {what}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("protocol messages serialise")
}

/// Key generation in progress (holds `d1` until [`KeyGen::finish`]).
#[wasm_bindgen]
pub struct KeyGen {
    inner: Option<ClientKeyGen>,
    request: String,
}

#[wasm_bindgen]
impl KeyGen {
    /// Pick `d1`; `context` binds the proofs to this enrolment (the server says what it is).
    #[wasm_bindgen(constructor)]
    pub fn new(context: &str) -> Result<KeyGen> {
        let (inner, req) = ClientKeyGen::start(context.as_bytes())?;
        Ok(KeyGen { inner: Some(inner), request: to_json(&req) })
    }

    /// The first message (JSON) for the server.
    #[wasm_bindgen(getter)]
    pub fn request(&self) -> String {
        self.request.clone()
    }

    /// Check the server's answer (its proof, the joint key) and keep the share.
    pub fn finish(&mut self, response: &str) -> Result<KeyShare> {
        let resp: twoparty::KeyGenResponse = json(response, "key generation response")?;
        let kg = self.inner.take().ok_or_else(|| bad("密钥生成已结束 / key generation already finished"))?;
        Ok(KeyShare { inner: Rc::new(kg.finish(&resp)?) })
    }
}

/// The phone's share `d1` with the joint public key.
#[wasm_bindgen]
pub struct KeyShare {
    inner: Rc<ClientKeyShare>,
}

const WRAP_AAD: &[u8] = b"medsign/phone-share/v1";

/// What the phone stores: the share wrapped under a key from the PIN, the device secret and the
/// server's unlock secret (see `medsign_crypto::wrap`). Nothing in it confirms a PIN guess: the
/// verifier the server compares is not stored (issue #15; shares stored before carried it, and
/// are re-wrapped without it at the next PIN change), and the blob cannot be opened without the
/// unlock secret the server releases only for a matching, counted PIN.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wrapped {
    v: u8,
    kdf: PinKdfParams,
    public_key: String,
    blob: String,
}

/// The fingerprint copy (mini program, WeChat SOTER): the share wrapped under the device secret
/// and the fingerprint secret the server releases after a verified fingerprint.
#[derive(serde::Serialize, serde::Deserialize)]
struct WrappedFingerprint {
    v: u8,
    kind: String,
    public_key: String,
    blob: String,
}

const FINGERPRINT_KIND: &str = "fingerprint";

fn unlock_secret(hex_secret: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let b = hex::decode(hex_secret).map_err(|_| bad("解锁密钥须为十六进制 / the unlock secret must be hex"))?;
    if b.len() < 16 {
        return Err(bad("解锁密钥至少 16 字节 / the unlock secret must be at least 16 bytes"));
    }
    Ok(zeroize::Zeroizing::new(b))
}

/// A PIN, stretched (Argon2id) under the device secret: gives the verifier the server counts
/// attempts against, and with the server's unlock secret the share's wrapping key.
#[wasm_bindgen]
pub struct PinKey {
    key: CryptoPinKey,
    kdf: PinKdfParams,
}

#[wasm_bindgen]
impl PinKey {
    /// A new PIN (fresh salt), to set or change it.
    pub fn create(pin: &str, device_secret_hex: &str) -> Result<PinKey> {
        if pin.is_empty() {
            return Err(bad("PIN 不能为空 / the PIN is empty"));
        }
        let kdf = PinKdfParams::generate()?;
        let key = CryptoPinKey::derive(pin.as_bytes(), &device_secret(device_secret_hex)?, &kdf)?;
        Ok(PinKey { key, kdf })
    }

    /// The PIN as entered, for the stored (wrapped) share it should open.
    #[wasm_bindgen(js_name = forWrapped)]
    pub fn for_wrapped(wrapped: &str, pin: &str, device_secret_hex: &str) -> Result<PinKey> {
        let w: Wrapped = json(wrapped, "wrapped share")?;
        if w.v != 2 {
            return Err(bad("不支持的密钥格式版本，请重新开通 / unsupported wrapped-share version; enrol again"));
        }
        let key = CryptoPinKey::derive(pin.as_bytes(), &device_secret(device_secret_hex)?, &w.kdf)?;
        Ok(PinKey { key, kdf: w.kdf })
    }

    /// What the server compares (hex); sent instead of the PIN.
    #[wasm_bindgen(getter)]
    pub fn verifier(&self) -> String {
        hex::encode(self.key.verifier())
    }
}

fn device_secret(hex_secret: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let b = hex::decode(hex_secret).map_err(|_| bad("设备密钥须为十六进制 / the device secret must be hex"))?;
    if b.len() < 16 {
        return Err(bad("设备密钥至少 16 字节 / the device secret must be at least 16 bytes"));
    }
    Ok(zeroize::Zeroizing::new(b))
}

#[wasm_bindgen]
impl KeyShare {
    /// The joint public key `P`, uncompressed SEC1, hex (goes into the certificate request).
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> String {
        hex::encode(self.inner.public_key().to_sec1_uncompressed())
    }

    /// Wrap for storage on the phone under `pin_key` and the unlock secret the server released
    /// when it stored `pin_key.verifier` (`POST /mobile/v1/pin`): JSON with the Argon2id
    /// parameters, the public key and the SM4-GCM blob (no verifier).
    pub fn wrap(&self, pin_key: &PinKey, unlock_secret_hex: &str) -> Result<String> {
        let kek = pin_key.key.kek(&unlock_secret(unlock_secret_hex)?)?;
        let blob = kek.wrap(&self.inner.to_bytes(), WRAP_AAD)?;
        Ok(to_json(&Wrapped { v: 2, kdf: pin_key.kdf.clone(), public_key: self.public_key(), blob: hex::encode(blob) }))
    }

    /// Unwrap what [`KeyShare::wrap`] made, with the PIN key and the unlock secret the server
    /// released for its verifier (`POST /mobile/v1/unlock`).
    pub fn unwrap(wrapped: &str, pin_key: &PinKey, unlock_secret_hex: &str) -> Result<KeyShare> {
        let w: Wrapped = json(wrapped, "wrapped share")?;
        if w.v != 2 || w.kdf != pin_key.kdf {
            return Err(bad("PIN 密钥与所存密钥不符 / the PIN key is not for this stored share"));
        }
        let kek = pin_key.key.kek(&unlock_secret(unlock_secret_hex)?)?;
        let blob = hex::decode(&w.blob).map_err(|_| bad("blob 不是十六进制 / blob is not hex"))?;
        let plain = kek.unwrap(&blob, WRAP_AAD).map_err(|_| bad("PIN 或设备不正确 / wrong PIN or not this device"))?;
        KeyShare::opened(&plain, &w.public_key)
    }

    fn opened(plain: &[u8], public_key: &str) -> Result<KeyShare> {
        let share = ClientKeyShare::from_bytes(plain)?;
        if hex::encode(share.public_key().to_sec1_uncompressed()) != public_key {
            return Err(bad("密钥与公钥不符 / the share does not match its public key"));
        }
        Ok(KeyShare { inner: Rc::new(share) })
    }

    /// A second, fingerprint copy for storage (WeChat SOTER, R3.9): wrapped under the device
    /// secret and the fingerprint secret the server released when fingerprint approval was
    /// switched on (`POST /mobile/v1/soter`).
    #[wasm_bindgen(js_name = wrapFingerprint)]
    pub fn wrap_fingerprint(&self, device_secret_hex: &str, fingerprint_secret_hex: &str) -> Result<String> {
        let kek = biometric_kek(&device_secret(device_secret_hex)?, &unlock_secret(fingerprint_secret_hex)?)?;
        let blob = kek.wrap(&self.inner.to_bytes(), WRAP_AAD)?;
        Ok(to_json(&WrappedFingerprint {
            v: 3,
            kind: FINGERPRINT_KIND.into(),
            public_key: self.public_key(),
            blob: hex::encode(blob),
        }))
    }

    /// Open the fingerprint copy with the secret the server released for a verified fingerprint
    /// (`POST /mobile/v1/soter/unlock`).
    #[wasm_bindgen(js_name = unwrapFingerprint)]
    pub fn unwrap_fingerprint(
        wrapped: &str,
        device_secret_hex: &str,
        fingerprint_secret_hex: &str,
    ) -> Result<KeyShare> {
        let w: WrappedFingerprint = json(wrapped, "fingerprint share")?;
        if w.v != 3 || w.kind != FINGERPRINT_KIND {
            return Err(bad("不是指纹密钥副本 / not a fingerprint copy of the share"));
        }
        let kek = biometric_kek(&device_secret(device_secret_hex)?, &unlock_secret(fingerprint_secret_hex)?)?;
        let blob = hex::decode(&w.blob).map_err(|_| bad("blob 不是十六进制 / blob is not hex"))?;
        let plain = kek
            .unwrap(&blob, WRAP_AAD)
            .map_err(|_| bad("指纹密钥或设备不正确 / wrong fingerprint secret or not this device"))?;
        KeyShare::opened(&plain, &w.public_key)
    }

    /// Start signing the digest `e = SM3(Z_A ‖ M)` (hex, computed by the server for a document
    /// the phone was shown). Each session is used once.
    #[wasm_bindgen(js_name = beginSign)]
    pub fn begin_sign(&self, e_hex: &str) -> Result<SignSession> {
        let e: [u8; 32] = hex::decode(e_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("e 须为 32 字节十六进制 / e must be 32 bytes of hex"))?;
        let (inner, req) = ClientSignSession::start(self.inner.clone(), &e)?;
        Ok(SignSession { inner: Some(inner), request: to_json(&req), subject: None })
    }

    /// Start signing a certification request of this key with the server (issue #17: an outside
    /// CA certifies the key from its own PKCS#10). `info_hex` is the request's signed part
    /// (CertificationRequestInfo, DER) from `POST /mobile/v1/certificate/csr`; it is signed only
    /// if it is a version-1 request for exactly this key with no attributes, and its digest is
    /// computed here — the server cannot have a document's digest signed this way. The session's
    /// `subject` is the common name the request names, to show before the PIN is asked.
    #[wasm_bindgen(js_name = beginCertRequest)]
    pub fn begin_cert_request(&self, info_hex: &str) -> Result<SignSession> {
        let info = hex::decode(info_hex).map_err(|_| bad("证书请求不是十六进制 / the request is not hex"))?;
        let name = request_name(&info, self.inner.public_key())?;
        let e = self.inner.public_key().e(medsign_crypto::sm2::DEFAULT_ID, &info)?;
        let (inner, req) = ClientSignSession::start(self.inner.clone(), &e)?;
        Ok(SignSession { inner: Some(inner), request: to_json(&req), subject: Some(name) })
    }

    /// Seal this share to a session grant's public key (hex SEC1, from `POST /mobile/v1/grants`)
    /// bound to the grant's context: the server's grant worker may then sign for this user until
    /// the grant ends (R3.5). Returns the sealed blob, hex.
    #[wasm_bindgen(js_name = sealTo)]
    pub fn seal_to(&self, grant_public_key_hex: &str, context: &str) -> Result<String> {
        let key = hex::decode(grant_public_key_hex)
            .ok()
            .and_then(|b| medsign_crypto::sm2::Sm2PublicKey::from_sec1(&b).ok())
            .ok_or_else(|| bad("授权公钥无效 / the grant public key is not a valid SM2 point"))?;
        Ok(hex::encode(medsign_crypto::seal::seal(&key, &self.inner.to_bytes(), context.as_bytes())?))
    }

    /// `e` of `message` for this key with the standard distinguishing ID (GM/T 0009), hex.
    #[wasm_bindgen(js_name = digestOf)]
    pub fn digest_of(&self, message: &[u8]) -> Result<String> {
        Ok(hex::encode(self.inner.public_key().e(medsign_crypto::sm2::DEFAULT_ID, message)?))
    }
}

/// One signature in progress (holds the nonce `k1`).
#[wasm_bindgen]
pub struct SignSession {
    inner: Option<ClientSignSession<Rc<ClientKeyShare>>>,
    request: String,
    subject: Option<String>,
}

#[wasm_bindgen]
impl SignSession {
    /// For a certification request: the common name it certifies the key for.
    #[wasm_bindgen(getter)]
    pub fn subject(&self) -> Option<String> {
        self.subject.clone()
    }

    /// The signing request (JSON) for the server.
    #[wasm_bindgen(getter)]
    pub fn request(&self) -> String {
        self.request.clone()
    }

    /// Combine the server's answer; the signature (DER, hex) only if it verifies.
    pub fn finish(&mut self, response: &str) -> Result<String> {
        let resp: twoparty::SignResponse = json(response, "signing response")?;
        let s = self.inner.take().ok_or_else(|| bad("签名会话已结束 / the signing session is finished"))?;
        Ok(hex::encode(s.finish(&resp)?.to_der()))
    }
}

/// Check a CertificationRequestInfo (RFC 2986) before the phone signs it: `SEQUENCE { INTEGER 0,
/// subject Name, subjectPKInfo, [0] attributes }` with nothing after it, the key exactly `key`,
/// no attributes. Returns the subject's common name.
fn request_name(info: &[u8], key: &medsign_crypto::sm2::Sm2PublicKey) -> Result<String> {
    use der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged, asn1::AnyRef};
    let refused =
        |why: &str| WasmError(format!("证书请求不能签署 / the certification request cannot be signed: {why}"));
    let malformed = |_| refused("malformed");
    let top = AnyRef::from_der(info).map_err(malformed)?;
    if top.tag() != Tag::Sequence {
        return Err(refused("not a SEQUENCE"));
    }
    let mut r = SliceReader::new(top.value()).map_err(malformed)?;
    let version: u8 = r.decode().map_err(malformed)?;
    let subject: AnyRef<'_> = r.decode().map_err(malformed)?;
    let spki: AnyRef<'_> = r.decode().map_err(malformed)?;
    let attributes: AnyRef<'_> = r.decode().map_err(malformed)?;
    if !r.is_finished() {
        return Err(refused("data after the attributes"));
    }
    if version != 0 {
        return Err(refused("not a version 1 request"));
    }
    let own = key.to_spki_der();
    if spki.to_der().map_err(malformed)? != own {
        return Err(refused("the key is not this phone's key"));
    }
    if attributes.tag() != (Tag::ContextSpecific { constructed: true, number: TagNumber(0) })
        || !attributes.value().is_empty()
    {
        return Err(refused("it carries attributes"));
    }
    if subject.tag() != Tag::Sequence {
        return Err(refused("the subject is not a name"));
    }
    // RDNSequence: SEQUENCE OF SET OF SEQUENCE { type OID, value }; exactly one common name, as
    // UTF8String or PrintableString (what the doctor is shown is what the CA reads)
    let mut rdns = SliceReader::new(subject.value()).map_err(malformed)?;
    let mut cn = None;
    while !rdns.is_finished() {
        let set: AnyRef<'_> = rdns.decode().map_err(malformed)?;
        if set.tag() != Tag::Set {
            return Err(refused("the subject is not a name"));
        }
        let mut atvs = SliceReader::new(set.value()).map_err(malformed)?;
        while !atvs.is_finished() {
            let atv: AnyRef<'_> = atvs.decode().map_err(malformed)?;
            if atv.tag() != Tag::Sequence {
                return Err(refused("the subject is not a name"));
            }
            let mut a = SliceReader::new(atv.value()).map_err(malformed)?;
            let oid: der::asn1::ObjectIdentifier = a.decode().map_err(malformed)?;
            let value: AnyRef<'_> = a.decode().map_err(malformed)?;
            if !a.is_finished() {
                return Err(refused("the subject is not a name"));
            }
            if oid == const_oid::db::rfc4519::CN {
                if cn.is_some() {
                    return Err(refused("more than one common name"));
                }
                if !matches!(value.tag(), Tag::Utf8String | Tag::PrintableString) {
                    return Err(refused("the common name is not UTF8String or PrintableString"));
                }
                cn = Some(String::from_utf8(value.value().to_vec()).map_err(|_| refused("the name is not text"))?);
            }
        }
    }
    cn.filter(|n| !n.trim().is_empty()).ok_or_else(|| refused("no common name"))
}

/// The PIN rules (R3.9), checked on the phone before a PIN is set — the PIN never leaves it:
/// digits only, `min_len`–`max_len` long (default 6–12), not one digit repeated, not a run up or
/// down (123456, 987654), not a repeated pair or triple (121212, 123123), not the employee number
/// or its end (numbers of 4 digits or more). `None` when acceptable, otherwise why not (Chinese / English).
pub fn pin_problem(pin: &str, employee_no: &str, min_len: usize, max_len: usize) -> Option<String> {
    let d: Vec<u8> = pin.bytes().collect();
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return Some("PIN 只能由数字组成 / the PIN must be digits only".into());
    }
    if d.len() < min_len || d.len() > max_len {
        return Some(format!("PIN 须为 {min_len}–{max_len} 位数字 / the PIN must have {min_len}-{max_len} digits"));
    }
    if d.iter().all(|c| *c == d[0]) {
        return Some("PIN 不能是同一个数字重复 / the PIN cannot repeat one digit".into());
    }
    let steps: Vec<i16> = d.windows(2).map(|w| i16::from(w[1]) - i16::from(w[0])).collect();
    if steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1) {
        return Some("PIN 不能是连续数字 / the PIN cannot be a run of consecutive digits".into());
    }
    for period in [2, 3] {
        if d.len().is_multiple_of(period) && d.chunks(period).all(|c| c == &d[..period]) {
            return Some("PIN 不能是重复的数字组合 / the PIN cannot repeat a short pattern".into());
        }
    }
    let digits: String = employee_no.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 4 && (digits.ends_with(pin) || pin.contains(digits.as_str())) {
        return Some("PIN 不能包含工号 / the PIN cannot contain the employee number".into());
    }
    None
}

/// [`pin_problem`] for JavaScript: `null` when the PIN is acceptable, otherwise the reason.
#[wasm_bindgen(js_name = checkPin)]
pub fn check_pin(pin: &str, employee_no: &str, min_len: Option<usize>, max_len: Option<usize>) -> Option<String> {
    pin_problem(pin, employee_no, min_len.unwrap_or(6), max_len.unwrap_or(12))
}

/// A new device secret (32 random bytes, hex) — made once when the phone is bound.
#[wasm_bindgen(js_name = newDeviceSecret)]
pub fn new_device_secret() -> Result<String> {
    Ok(hex::encode(medsign_crypto::rng::bytes::<32>()?))
}

/// SM3 of `data`, hex.
/// Read a QR code in a camera frame — RGBA pixels as a canvas's `getImageData` gives them — for
/// browsers without `BarcodeDetector` (R2.5, R2.6: the phone scans the PC's QR). Returns the text
/// of the first readable code, or `undefined` when the frame has none.
#[wasm_bindgen(js_name = readQr)]
pub fn read_qr(rgba: &[u8], width: usize, height: usize) -> Result<Option<String>> {
    if width == 0 || height == 0 || width.checked_mul(height).and_then(|n| n.checked_mul(4)) != Some(rgba.len()) {
        return Err(bad("图像尺寸与像素数据不符 / the image size does not match its pixels (RGBA expected)"));
    }
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        let i = (y * width + x) * 4;
        // ITU-R BT.601 luma, integer weights summing to 256
        ((77 * rgba[i] as u32 + 150 * rgba[i + 1] as u32 + 29 * rgba[i + 2] as u32) >> 8) as u8
    });
    Ok(img.detect_grids().iter().find_map(|g| g.decode().ok().map(|(_, text)| text)))
}

#[wasm_bindgen]
pub fn sm3(data: &[u8]) -> String {
    hex::encode(medsign_crypto::hash::sm3(data))
}

/// The end-to-end channel to the hospital's servers (issue #17 item 3): every call of the phone
/// API sealed to the servers' channel key, which is pinned by its fingerprint, so a DMZ gateway
/// forwards what it cannot read or answer.
/// ```text
/// const ch = new Channel(channel.public_key, pinnedFingerprint, JSON.stringify(channel.history));
///   // throws on a different key, unless the history leads to it from the pinned one; pin ch.fingerprint
/// const call = ch.seal(JSON.stringify({ts, method, path, auth, body}));   POST call.body → answer
/// call.open(answerJson) → JSON {status, body}
/// ```
#[wasm_bindgen]
pub struct Channel {
    key: medsign_crypto::sm2::Sm2PublicKey,
    fingerprint: String,
}

#[wasm_bindgen]
impl Channel {
    /// The channel key of `GET /mobile/v1/channel` (hex point). `pinned`: the fingerprint this
    /// phone pinned (from the activation QR code or its first activation), or `""` before there
    /// is one; a key whose fingerprint differs is refused unless `history` (the answer's
    /// `history`, as JSON) leads to it from the pinned key, each key endorsed by the one before
    /// (a rotation). The phone then pins [`Self::fingerprint`].
    #[wasm_bindgen(constructor)]
    pub fn new(public_key_hex: &str, pinned: &str, history: Option<String>) -> Result<Channel> {
        let key =
            point(public_key_hex).ok_or_else(|| bad("通道公钥无效 / the channel key is not a valid SM2 point"))?;
        let fingerprint = hex::encode(medsign_crypto::e2e::fingerprint(&key));
        if !pinned.is_empty() && !pinned.eq_ignore_ascii_case(&fingerprint) {
            let posing = || {
                bad(
                    "服务器的通道密钥与绑定时记录的不同，可能有人冒充医院服务器，请联系信息科 / the server's channel key is not the one this phone pinned: someone may be posing as the hospital's server — contact the IT department",
                )
            };
            let pin: [u8; 32] = hex::decode(pinned).ok().and_then(|b| b.try_into().ok()).ok_or_else(posing)?;
            let steps = succession(history.as_deref().unwrap_or("[]")).ok_or_else(posing)?;
            let at = |fp: &[u8; 32]| steps.iter().position(|s| medsign_crypto::e2e::fingerprint(&s.key) == *fp);
            let (Some(ip), Some(io)) = (at(&pin), at(&medsign_crypto::e2e::fingerprint(&key))) else {
                return Err(posing());
            };
            if ip > io {
                // a server still naming the key before the one this phone already moved to (a
                // rotation a few seconds old): keep the pinned key, which every server opens
                return Ok(Channel { key: steps[ip].key, fingerprint: hex::encode(pin) });
            }
            medsign_crypto::e2e::follow(&pin, &steps[ip..=io]).map_err(|_| posing())?;
        }
        Ok(Channel { key, fingerprint })
    }

    /// SM3 of the key (hex): what to pin.
    #[wasm_bindgen(getter)]
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Seal one call (`plaintext`: the JSON `{ts, method, path, auth, body}`).
    pub fn seal(&self, plaintext: &str) -> Result<SealedCall> {
        let (blob, opener) = medsign_crypto::e2e::seal_request(&self.key, plaintext.as_bytes())?;
        let body = serde_json::json!({"v": 1, "kid": &self.fingerprint[..16], "blob": B64.encode(blob)});
        Ok(SealedCall { body: body.to_string(), opener })
    }
}

fn point(hex_point: &str) -> Option<medsign_crypto::sm2::Sm2PublicKey> {
    hex::decode(hex_point).ok().and_then(|b| medsign_crypto::sm2::Sm2PublicKey::from_sec1(&b).ok())
}

/// The `history` of a channel answer (at most 16 keys, 16 KiB), or `None` when it is malformed.
fn succession(history: &str) -> Option<Vec<medsign_crypto::e2e::Step>> {
    #[derive(serde::Deserialize)]
    struct Succession {
        generation: u32,
        public_key: String,
        endorsement: Option<String>,
    }
    if history.len() > 16 << 10 {
        return None;
    }
    let list: Vec<Succession> = serde_json::from_str(history).ok()?;
    if list.len() > 16 {
        return None;
    }
    list.into_iter()
        .map(|s| {
            let endorsement = match s.endorsement {
                Some(h) => Some(medsign_crypto::sm2::Sm2Signature::from_raw(&hex::decode(h).ok()?).ok()?),
                None => None,
            };
            Some(medsign_crypto::e2e::Step { generation: s.generation, key: point(&s.public_key)?, endorsement })
        })
        .collect()
}

/// One sealed call: its body for `POST /mobile/v1/sealed`, and the key to its answer.
#[wasm_bindgen]
pub struct SealedCall {
    body: String,
    opener: medsign_crypto::e2e::Opener,
}

#[wasm_bindgen]
impl SealedCall {
    /// The JSON to POST.
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> String {
        self.body.clone()
    }

    /// Open the server's answer (the JSON of the 200): the call's `{status, body}` as JSON.
    /// Fails for an answer that did not come from the server this call was sealed to.
    pub fn open(&self, answer: &str) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            blob: String,
        }
        let a: Answer = json(answer, "sealed answer")?;
        let blob =
            B64.decode(a.blob.as_bytes()).map_err(|_| bad("加密应答不是 base64 / the sealed answer is not base64"))?;
        let plain = self.opener.open(&blob).map_err(|_| {
            bad("加密应答无法打开（不是医院服务器的应答）/ the sealed answer cannot be opened (it is not the hospital server's)")
        })?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad("加密应答不是 UTF-8 / the sealed answer is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_crypto::twoparty::{SeenQ1Memory, ServerKeyGen};

    /// Issue #17 item 3: the phone seals to the pinned key only, and opens only the answer of the
    /// server it sealed to — a gateway with a key of its own can neither read nor answer.
    #[test]
    fn the_channel_holds_to_its_pin_and_opens_only_its_own_answer() {
        use medsign_crypto::{e2e, sm2::Sm2SecretKey};
        let server = Sm2SecretKey::generate().unwrap();
        let point = hex::encode(server.public_key().to_sec1_uncompressed());
        let fp = hex::encode(e2e::fingerprint(server.public_key()));
        let gateway = Sm2SecretKey::generate().unwrap();
        let forged = hex::encode(gateway.public_key().to_sec1_uncompressed());
        assert!(Channel::new(&forged, &fp, None).is_err(), "another key than the pinned one");
        assert!(Channel::new("04abcd", "", None).is_err(), "not a point");
        let first_use = Channel::new(&forged, "", None).unwrap();
        assert_ne!(first_use.fingerprint(), fp, "without a pin the key is what it is (trust on first use)");

        let ch = Channel::new(&point, &fp.to_uppercase(), None).unwrap();
        assert_eq!(ch.fingerprint(), fp);
        let call = ch.seal(r#"{"ts":1,"method":"GET","path":"/mobile/v1/pending"}"#).unwrap();
        let env: serde_json::Value = serde_json::from_str(&call.body()).unwrap();
        assert_eq!((env["v"].as_u64(), env["kid"].as_str()), (Some(1), Some(&fp[..16])));
        let blob = B64.decode(env["blob"].as_str().unwrap()).unwrap();
        assert!(e2e::open_request(&gateway, &blob).is_err(), "the gateway cannot open it");
        let (plain, responder) = e2e::open_request(&server, &blob).unwrap();
        assert!(plain.starts_with(b"{\"ts\":1"));
        let answer = serde_json::json!({"v": 1, "blob": B64.encode(responder.seal(br#"{"status":200}"#).unwrap())});
        assert_eq!(call.open(&answer.to_string()).unwrap(), r#"{"status":200}"#);
        // an answer the gateway made up, or the server's answer to another call: refused
        let (b2, _) = e2e::seal_request(gateway.public_key(), b"x").unwrap();
        let (_, gw_responder) = e2e::open_request(&gateway, &b2).unwrap();
        let made_up = serde_json::json!({"v": 1, "blob": B64.encode(gw_responder.seal(br#"{"status":200}"#).unwrap())});
        assert!(call.open(&made_up.to_string()).is_err());
        assert!(call.open(r#"{"v":1,"blob":"not base64!"}"#).is_err());
        assert!(call.open("{}").is_err());
    }

    /// A rotated channel key (issue #17): the phone follows the endorsement from its pinned key
    /// and pins the new one; a gateway's key with a history of its own making is refused.
    #[test]
    fn the_channel_follows_a_rotation_only_by_endorsement() {
        use medsign_crypto::{e2e, sm2::Sm2SecretKey};
        let hexp = |k: &Sm2SecretKey| hex::encode(k.public_key().to_sec1_uncompressed());
        let (old, new, gateway) =
            (Sm2SecretKey::generate().unwrap(), Sm2SecretKey::generate().unwrap(), Sm2SecretKey::generate().unwrap());
        let pin = hex::encode(e2e::fingerprint(old.public_key()));
        let step = |g: u32, k: &Sm2SecretKey, by: Option<&Sm2SecretKey>| {
            serde_json::json!({"generation": g, "public_key": hexp(k),
                "endorsement": by.map(|b| hex::encode(e2e::endorse(b, g, k.public_key()).unwrap().to_raw()))})
        };
        let history = serde_json::json!([step(1, &old, None), step(2, &new, Some(&old))]).to_string();
        let ch = Channel::new(&hexp(&new), &pin, Some(history.clone())).unwrap();
        let new_fp = hex::encode(e2e::fingerprint(new.public_key()));
        assert_eq!(ch.fingerprint(), new_fp, "the new key is pinned");
        assert!(Channel::new(&hexp(&new), &pin, None).is_err(), "no history, no move");
        assert!(
            Channel::new(&hexp(&gateway), &pin, Some(history.clone())).is_err(),
            "the key offered must be in the history"
        );
        // a server still naming the old key while this phone already moved: the pin is kept (and
        // sealed to), never rolled back; without the newer key in the history, refused
        let kept = Channel::new(&hexp(&old), &new_fp, Some(history)).unwrap();
        assert_eq!(kept.fingerprint(), new_fp);
        let call = kept.seal("{}").unwrap();
        let env: serde_json::Value = serde_json::from_str(&call.body()).unwrap();
        assert_eq!(env["kid"].as_str(), Some(&new_fp[..16]), "sealed to the pinned key");
        let truncated = serde_json::json!([step(1, &old, None)]).to_string();
        assert!(Channel::new(&hexp(&old), &new_fp, Some(truncated)).is_err(), "a rollback");
        let made_up = serde_json::json!([step(1, &old, None), step(2, &gateway, Some(&gateway))]).to_string();
        assert!(Channel::new(&hexp(&gateway), &pin, Some(made_up)).is_err(), "endorsed by itself");
        let broken = serde_json::json!([step(1, &old, None), step(2, &new, None)]).to_string();
        assert!(Channel::new(&hexp(&new), &pin, Some(broken)).is_err(), "after a compromise");
        let long = serde_json::Value::Array(vec![step(1, &old, None); 17]).to_string();
        assert!(Channel::new(&hexp(&new), &pin, Some(long)).is_err(), "over 16 keys");
        assert!(Channel::new(&hexp(&new), &pin, Some("{".into())).is_err());
    }

    /// A frame as a phone camera sees the PC: the QR drawn small and off-centre on a grey screen,
    /// with a little noise.
    fn frame(text: &str, w: usize, h: usize, module: usize, at: (usize, usize)) -> Vec<u8> {
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        let n = code.width();
        let dark = code.to_colors();
        let mut rgba = vec![0u8; w * h * 4];
        let mut noise = 7u32;
        for y in 0..h {
            for x in 0..w {
                let (qx, qy) = (x as isize - at.0 as isize, y as isize - at.1 as isize);
                let quiet = 4 * module as isize;
                let side = (n * module) as isize;
                let v: u8 = if qx >= -quiet && qy >= -quiet && qx < side + quiet && qy < side + quiet {
                    let inside = qx >= 0 && qy >= 0 && qx < side && qy < side;
                    let is_dark =
                        inside && dark[(qy as usize / module) * n + qx as usize / module] == qrcode::Color::Dark;
                    if is_dark { 30 } else { 235 }
                } else {
                    150
                };
                noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let v = v.saturating_add((noise >> 28) as u8);
                rgba[(y * w + x) * 4..(y * w + x) * 4 + 4].copy_from_slice(&[v, v, v, 255]);
            }
        }
        rgba
    }

    #[test]
    fn reads_the_qr_a_camera_sees_and_nothing_from_a_blank_frame() {
        let link = "https://medsign.example/m/#/sign?t=tk_3f9a2c7e1b5d4a6f";
        let f = frame(link, 320, 240, 4, (70, 40));
        assert_eq!(read_qr(&f, 320, 240).unwrap().as_deref(), Some(link));
        assert_eq!(read_qr(&frame(link, 320, 240, 3, (150, 100)), 320, 240).unwrap().as_deref(), Some(link));
        assert_eq!(read_qr(&vec![200u8; 64 * 48 * 4], 64, 48).unwrap(), None);
        assert!(read_qr(&f, 321, 240).is_err(), "size mismatch");
        assert!(read_qr(&[], 0, 0).is_err());
    }

    #[test]
    fn pin_rules() {
        for ok in ["135790", "246813", "90210577", "314159"] {
            assert_eq!(pin_problem(ok, "1001", 6, 12), None, "{ok}");
        }
        for (bad, why) in [
            ("12345", "6-12 digits"),
            ("1234567890123", "6-12 digits"),
            ("12a456", "digits only"),
            ("", "digits only"),
            ("000000", "repeat one digit"),
            ("123456", "consecutive"),
            ("987654", "consecutive"),
            ("121212", "short pattern"),
            ("123123", "short pattern"),
            ("019876", "employee number"),
            ("20198765", "employee number"),
        ] {
            let p = pin_problem(bad, "E2019876", 6, 12).unwrap_or_default();
            assert!(p.contains(why), "{bad}: {p}");
        }
        assert_eq!(check_pin("135790", "1", None, None), None);
        assert!(check_pin("1357", "1", Some(4), Some(4)).is_none());
    }

    #[test]
    fn keygen_wrap_unwrap_and_sign_against_the_server_half() {
        let ctx = "user=1001|key=k1";
        let mut kg = KeyGen::new(ctx).unwrap();
        let req: twoparty::KeyGenRequest = serde_json::from_str(&kg.request()).unwrap();
        let (server, resp) = ServerKeyGen::respond(&req, ctx.as_bytes()).unwrap();
        let share = kg.finish(&serde_json::to_string(&resp).unwrap()).unwrap();
        assert_eq!(share.public_key(), hex::encode(server.public_key().to_sec1_uncompressed()));
        assert!(kg.finish(&serde_json::to_string(&resp).unwrap()).is_err(), "single use");
        // stored wrapped: PIN, device secret and the server's unlock secret are all needed
        let secret = new_device_secret().unwrap();
        let unlock = hex::encode([5u8; 32]);
        let pk = PinKey::create("246810", &secret).unwrap();
        let stored = share.wrap(&pk, &unlock).unwrap();
        assert!(!stored.contains(&hex::encode(share.inner.to_bytes().as_slice())));
        assert!(!stored.contains(&pk.verifier()), "the verifier is not stored on the phone");
        let wrong_pin = PinKey::for_wrapped(&stored, "246811", &secret).unwrap();
        assert_ne!(wrong_pin.verifier(), pk.verifier(), "the server sees a wrong PIN");
        let e = KeyShare::unwrap(&stored, &wrong_pin, &unlock).err().unwrap();
        assert!(e.0.contains("wrong PIN"), "{e:?}");
        let other_device = PinKey::for_wrapped(&stored, "246810", &new_device_secret().unwrap()).unwrap();
        assert!(KeyShare::unwrap(&stored, &other_device, &unlock).is_err());
        assert!(PinKey::for_wrapped(&stored, "246810", "abcd").is_err(), "short device secret");
        let right = PinKey::for_wrapped(&stored, "246810", &secret).unwrap();
        assert_eq!(right.verifier(), pk.verifier());
        assert!(KeyShare::unwrap(&stored, &right, &hex::encode([6u8; 32])).is_err(), "without the server's secret");
        assert!(KeyShare::unwrap(&stored, &PinKey::create("246810", &secret).unwrap(), &unlock).is_err(), "other salt");
        let again = KeyShare::unwrap(&stored, &right, &unlock).unwrap();
        // sign a message with the server half; the result verifies with the joint key
        let msg = "门诊处方 No.1".as_bytes();
        let e = again.digest_of(msg).unwrap();
        let mut session = again.begin_sign(&e).unwrap();
        let sreq: twoparty::SignRequest = serde_json::from_str(&session.request()).unwrap();
        let e_bytes: [u8; 32] = hex::decode(&e).unwrap().try_into().unwrap();
        let mut seen = SeenQ1Memory::default();
        let sresp = server.sign(&sreq, &e_bytes, &mut seen).unwrap();
        let der = hex::decode(session.finish(&serde_json::to_string(&sresp).unwrap()).unwrap()).unwrap();
        let sig = medsign_crypto::sm2::Sm2Signature::from_der(&der).unwrap();
        server.public_key().verify_prehash(&e_bytes, &sig).unwrap();
        assert!(session.finish(&serde_json::to_string(&sresp).unwrap()).is_err(), "single use");
        // a tampered answer never yields a signature
        let mut s2 = again.begin_sign(&e).unwrap();
        let sreq: twoparty::SignRequest = serde_json::from_str(&s2.request()).unwrap();
        let mut bad_resp = server.sign(&sreq, &e_bytes, &mut seen).unwrap();
        bad_resp.s3 = bad_resp.s2.clone();
        assert!(s2.finish(&serde_json::to_string(&bad_resp).unwrap()).is_err());
        // garbage in → errors, not panics
        assert!(again.begin_sign("xyz").is_err());
        assert!(KeyShare::unwrap("{}", &right, &unlock).is_err());
        assert!(PinKey::for_wrapped("{}", "1", &secret).is_err());
        assert!(KeyShare::unwrap(&stored, &right, "zz").is_err());
        assert!(KeyGen::new(ctx).unwrap().finish("not json").is_err());
        assert_eq!(sm3(b"abc"), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
        // the fingerprint copy: device secret + the server's fingerprint secret, nothing else
        let fp = hex::encode([8u8; 32]);
        let copy = again.wrap_fingerprint(&secret, &fp).unwrap();
        assert!(!copy.contains(&hex::encode(share.inner.to_bytes().as_slice())));
        let opened = KeyShare::unwrap_fingerprint(&copy, &secret, &fp).unwrap();
        assert_eq!(opened.public_key(), share.public_key());
        assert!(KeyShare::unwrap_fingerprint(&copy, &secret, &unlock).is_err(), "the PIN's secret does not open it");
        let e = KeyShare::unwrap_fingerprint(&copy, &new_device_secret().unwrap(), &fp).err().unwrap();
        assert!(e.0.contains("not this device"), "{e:?}");
        assert!(KeyShare::unwrap_fingerprint(&stored, &secret, &fp).is_err(), "a PIN copy is not a fingerprint copy");
        assert!(KeyShare::unwrap(&copy, &right, &unlock).is_err(), "nor the other way round");
        assert!(again.wrap_fingerprint(&secret, "abcd").is_err());
    }

    /// Issue #17: the phone co-signs a certification request only for its own key, with no
    /// attributes, and computes its digest itself; what it signs assembles into a PKCS#10 that
    /// verifies with the joint key.
    #[test]
    fn the_phone_signs_only_a_request_for_its_own_key() {
        use der::{Decode, Encode, Tag, asn1::AnyRef};
        use medsign_pki::{alg::Sm2IdPolicy, csr, name::parse_dn};
        let ctx = "user=1001|key=k3";
        let mut kg = KeyGen::new(ctx).unwrap();
        let req: twoparty::KeyGenRequest = serde_json::from_str(&kg.request()).unwrap();
        let (server, resp) = ServerKeyGen::respond(&req, ctx.as_bytes()).unwrap();
        let share = kg.finish(&serde_json::to_string(&resp).unwrap()).unwrap();
        let joint = medsign_crypto::PublicKey::Sm2(*server.public_key());
        let subject = parse_dn("CN=王医生,OU=内科,O=某县人民医院,C=CN").unwrap();
        let info = csr::request_info(&subject, &joint).unwrap();

        let mut session = share.begin_cert_request(&hex::encode(&info)).unwrap();
        assert_eq!(session.subject().as_deref(), Some("王医生"));
        let sreq: twoparty::SignRequest = serde_json::from_str(&session.request()).unwrap();
        // the server half answers only for the digest of the request it made
        let e = server.public_key().e(medsign_crypto::sm2::DEFAULT_ID, &info).unwrap();
        let mut seen = SeenQ1Memory::default();
        assert!(server.sign(&sreq, &[7u8; 32], &mut seen).is_err());
        let sresp = server.sign(&sreq, &e, &mut seen).unwrap();
        let sig = hex::decode(session.finish(&serde_json::to_string(&sresp).unwrap()).unwrap()).unwrap();
        let der = csr::assemble(&info, medsign_crypto::SignatureScheme::Sm2Sm3, &sig).unwrap();
        let checked = csr::parse(&der, Sm2IdPolicy::Standard).unwrap();
        assert_eq!((&checked.public_key, &checked.subject), (&joint, &subject));

        // what the phone refuses to sign
        let rewrap = |body: &[u8]| AnyRef::new(Tag::Sequence, body).unwrap().to_der().unwrap();
        let body = AnyRef::from_der(&info).unwrap().value().to_vec();
        let other = medsign_crypto::PrivateKey::generate(medsign_crypto::KeyAlg::Sm2).unwrap().public_key();
        let mut v2 = body.clone();
        assert_eq!(&v2[..3], &[2, 1, 0]);
        v2[2] = 1;
        let mut attributes = body[..body.len() - 2].to_vec();
        assert_eq!(&body[body.len() - 2..], &[0xa0, 0]);
        attributes.extend_from_slice(&[0xa0, 3, 2, 1, 0]);
        let mut trailing = info.clone();
        trailing.push(0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("the key is not this phone's key", csr::request_info(&subject, &other).unwrap()),
            ("not a version 1 request", rewrap(&v2)),
            ("it carries attributes", rewrap(&attributes)),
            ("malformed", trailing),
            ("no common name", csr::request_info(&parse_dn("O=某县人民医院,C=CN").unwrap(), &joint).unwrap()),
            (
                "more than one common name",
                csr::request_info(&parse_dn("CN=王医生,CN=李医生,O=某县人民医院").unwrap(), &joint).unwrap(),
            ),
            ("malformed", e.to_vec()),
        ];
        for (why, bytes) in cases {
            let err = share.begin_cert_request(&hex::encode(&bytes)).err().unwrap();
            assert!(err.0.contains(why), "{why}: {err:?}");
        }
        assert!(share.begin_cert_request("zz").is_err());
        assert!(share.begin_sign(&hex::encode(e)).unwrap().subject().is_none());
    }

    /// Issue #15: a thief with everything the phone stores — the wrapped share, the fingerprint
    /// copy and the device secret — searches the PIN offline. Nothing confirms the right guess:
    /// no stored value equals any guess's verifier, and without the server's unlock secret the
    /// right PIN fails exactly as a wrong one does.
    #[test]
    fn the_phones_storage_alone_confirms_no_pin_guess() {
        let ctx = "user=1001|key=k2";
        let mut kg = KeyGen::new(ctx).unwrap();
        let req: twoparty::KeyGenRequest = serde_json::from_str(&kg.request()).unwrap();
        let (_, resp) = ServerKeyGen::respond(&req, ctx.as_bytes()).unwrap();
        let share = kg.finish(&serde_json::to_string(&resp).unwrap()).unwrap();
        let device = new_device_secret().unwrap();
        let (unlock, fp) = (hex::encode([0x5au8; 32]), hex::encode([0xa5u8; 32]));
        let stored = share.wrap(&PinKey::create("135790", &device).unwrap(), &unlock).unwrap();
        let copy = share.wrap_fingerprint(&device, &fp).unwrap();
        let phone = format!("{stored}{copy}{device}");
        let guesses = ["000000", "123457", "135790", "246810", "999999"];
        let outcomes: Vec<String> = guesses
            .iter()
            .map(|pin| {
                let k = PinKey::for_wrapped(&stored, pin, &device).unwrap();
                assert!(!phone.contains(&k.verifier()), "{pin}: a stored value confirms the guess");
                // the thief has no unlock secret: try the ones a guess could yield
                let own = hex::encode(medsign_crypto::hash::sm3(k.verifier().as_bytes()));
                KeyShare::unwrap(&stored, &k, &own).err().map(|e| e.0).unwrap_or_default()
            })
            .collect();
        assert!(outcomes.iter().all(|o| !o.is_empty() && o == &outcomes[0]), "{outcomes:?}");
    }
}
