#!/usr/bin/env python3
"""Independent SM2 checker for medsign's interop tests (not medsign code: asn1crypto parses,
gmssl computes SM3, the SM2 verification equation is plain Python integers here, hashlib SHA-256).

  sm2_check.py cms SIG.p7s [--content FILE] --ca ROOT.pem [--ca ...] [--id ID]
      verify every SignerInfo of a CMS SignedData (RFC 5652 or GM/T 0010 OIDs): messageDigest,
      contentType, the SM2 signature over the signed attributes, and the signer's chain to a CA.
      A timestamp token (eContent TSTInfo, RFC 3161) is checked the same way; with
      --imprint-of FILE its messageImprint must be the hash of FILE.
  sm2_check.py cert CERT.pem --ca ISSUER.pem [--id ID]
      verify one certificate's SM2 signature with the issuer's key.
  sm2_check.py raw PUB.pem MSG SIG [--id ID]
      verify a raw SM2 signature (DER or r||s) over MSG.

Prints one PASS/FAIL line per check and a closing 'N passed, M failed'; exit 0 iff none failed.
"""
import argparse
import hashlib
import sys

from asn1crypto import cms, core, pem, x509, keys, tsp
from gmssl import sm2, sm3, func

SM2_CURVE = '1.2.156.10197.1.301'
SM2_SIG_OIDS = {'1.2.156.10197.1.501', '1.2.156.10197.1.301.1', '1.2.156.10197.1.301'}
SIGNED_DATA = {'1.2.840.113549.1.7.2', '1.2.156.10197.6.1.4.2.2'}
CURVE_A = 'FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC'
CURVE_B = '28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93'
GX = '32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7'
GY = 'BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0'

passed, failed = 0, 0


def report(name, ok, detail=''):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    print(('PASS' if ok else 'FAIL') + ': ' + name + (' (' + detail + ')' if detail else ''))


def sm3_bytes(data):
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def digest(oid, data):
    if oid == '1.2.156.10197.1.401':
        return sm3_bytes(data)
    if oid == '2.16.840.1.101.3.4.2.1':
        return hashlib.sha256(data).digest()
    raise ValueError('unsupported digest ' + oid)


def point_hex(spki):
    """x||y hex of an SM2 SubjectPublicKeyInfo (asn1crypto keys.PublicKeyInfo)."""
    raw = spki['public_key'].native if isinstance(spki['public_key'].native, bytes) else spki['public_key'].contents[1:]
    raw = bytes(raw)
    if raw[0] != 4 or len(raw) != 65:
        raise ValueError('expected an uncompressed SM2 point')
    return raw[1:].hex()


def is_sm2(spki):
    params = spki['algorithm']['parameters']
    return spki['algorithm']['algorithm'].dotted == SM2_CURVE or (
        params is not None and params.dump().endswith(bytes.fromhex('06082a811ccf5501822d')))


P = int('FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF', 16)
N = int('FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123', 16)


def ec_add(p1, p2):
    """Affine point addition on the SM2 curve (None = point at infinity), GB/T 32918.1 § 3.2.3.1."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + int(CURVE_A, 16)) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def ec_mul(k, pt):
    """Double-and-add scalar multiplication (public values only: no need for constant time)."""
    acc = None
    while k:
        if k & 1:
            acc = ec_add(acc, pt)
        pt = ec_add(pt, pt)
        k >>= 1
    return acc


def sm2_verify(pub_xy_hex, msg, sig, uid):
    """SM2 verification with the distinguishing ID, GB/T 32918.2 § 7.1, written here with plain
    integer arithmetic (SM3 from gmssl). gmssl's own verify was used before; its Jacobian code
    occasionally raises TypeError on valid signatures, so it is not the judge any more."""
    entl = (len(uid) * 8).to_bytes(2, 'big')
    z = sm3_bytes(entl + uid + bytes.fromhex(CURVE_A + CURVE_B + GX + GY + pub_xy_hex))
    e = int.from_bytes(sm3_bytes(z + msg), 'big')
    if len(sig) == 64 and sig[0] != 0x30:
        r, s = int.from_bytes(sig[:32], 'big'), int.from_bytes(sig[32:], 'big')
    else:
        seq = core.Sequence.load(sig)
        r, s = seq[0].native, seq[1].native
    if not (0 < r < N and 0 < s < N):
        return False
    t = (r + s) % N
    if t == 0:
        return False
    pub = (int(pub_xy_hex[:64], 16), int(pub_xy_hex[64:], 16))
    pt = ec_add(ec_mul(s, (int(GX, 16), int(GY, 16))), ec_mul(t, pub))
    return pt is not None and (e + pt[0]) % N == r


def load_certs(path):
    data = open(path, 'rb').read()
    if pem.detect(data):
        return [x509.Certificate.load(der) for kind, _, der in pem.unarmor(data, multiple=True) if kind == 'CERTIFICATE']
    return [x509.Certificate.load(data)]


def cert_signed_by(child, parent, uid):
    spki = parent['tbs_certificate']['subject_public_key_info']
    if not is_sm2(spki):
        return False
    if child['signature_algorithm']['algorithm'].dotted not in SM2_SIG_OIDS:
        return False
    return sm2_verify(point_hex(spki), child['tbs_certificate'].dump(), child['signature_value'].native, uid)


class AnySignedContentInfo(core.Sequence):
    """ContentInfo whose content is SignedData whatever the outer OID (RFC 5652 or GM/T 0010)."""
    _fields = [('content_type', core.ObjectIdentifier), ('content', cms.SignedData, {'explicit': 0})]


def check_chain(cert, pool, anchors, uid):
    cur, depth = cert, 0
    while depth < 8:
        for a in anchors:
            if a.dump() == cur.dump():
                return True, 'anchor reached'
        issuer = None
        for cand in anchors + pool:
            if cand.subject.dump() == cur.issuer.dump() and cand.dump() != cur.dump() and cert_signed_by(cur, cand, uid):
                issuer = cand
                break
        if issuer is None:
            return False, 'no verifying issuer for ' + cur.subject.human_friendly
        if any(a.dump() == issuer.dump() for a in anchors):
            return True, 'chain to ' + issuer.subject.human_friendly
        cur, depth = issuer, depth + 1
    return False, 'chain too long'


def cmd_cms(a):
    raw = open(a.sig, 'rb').read()
    if pem.detect(raw):
        raw = pem.unarmor(raw)[2]
    ci = AnySignedContentInfo.load(raw)
    report('outer content type is SignedData', ci['content_type'].dotted in SIGNED_DATA, ci['content_type'].dotted)
    sd = ci['content']
    eci = sd['encap_content_info']
    if eci['content_type'].dotted == '1.2.840.113549.1.9.16.1.4':
        content = bytes(eci['content'])  # the TSTInfo DER as signed
        tst = tsp.TSTInfo.load(content)
        report('TSTInfo parses (version %s, genTime %s)' % (tst['version'].native, tst['gen_time'].native), True)
        if a.imprint_of:
            mi = tst['message_imprint']
            want = digest(mi['hash_algorithm']['algorithm'].dotted, open(a.imprint_of, 'rb').read())
            report('messageImprint is the hash of ' + a.imprint_of, mi['hashed_message'].native == want)
    else:
        content = eci['content'].native if eci['content'].native is not None else None
    if content is None:
        if not a.content:
            report('content available', False, 'detached signature: --content needed')
            return
        content = open(a.content, 'rb').read()
    if isinstance(content, str):
        content = content.encode()
    econtent_type = eci['content_type'].dotted
    certs = [c.chosen for c in sd['certificates']] if sd['certificates'].native is not None else []
    anchors = [c for p in a.ca for c in load_certs(p)]
    uid = a.id.encode()
    for i, si in enumerate(sd['signer_infos']):
        sid = si['sid'].chosen
        signer = None
        for c in certs:
            if isinstance(sid, cms.IssuerAndSerialNumber):
                if c.issuer.dump() == sid['issuer'].dump() and c.serial_number == sid['serial_number'].native:
                    signer = c
            elif c.key_identifier == sid.native:
                signer = c
        report('signer #%d certificate present' % i, signer is not None)
        if signer is None:
            continue
        alg = si['digest_algorithm']['algorithm'].dotted
        attrs = si['signed_attrs']
        if attrs.native is None:
            signed = content
        else:
            md = ct = None
            for attr in attrs:
                oid = attr['type'].dotted
                if oid == '1.2.840.113549.1.9.4':
                    md = attr['values'][0].native
                elif oid == '1.2.840.113549.1.9.3':
                    ct = attr['values'][0].dotted
            report('signer #%d messageDigest' % i, md == digest(alg, content))
            report('signer #%d contentType attribute' % i, ct == econtent_type, str(ct))
            signed = attrs.dump(force=True)
            signed = b'\x31' + signed[1:]  # [0] IMPLICIT -> SET OF (RFC 5652 § 5.4)
        sig_alg = si['signature_algorithm']['algorithm'].dotted
        spki = signer['tbs_certificate']['subject_public_key_info']
        report('signer #%d signature algorithm is SM2' % i, sig_alg in SM2_SIG_OIDS and is_sm2(spki), sig_alg)
        report('signer #%d SM2 signature (GB/T 32918.2 equation, ID %r)' % (i, a.id),
               sm2_verify(point_hex(spki), signed, si['signature'].native, uid))
        ok, why = check_chain(signer, certs, anchors, uid)
        report('signer #%d certificate chain (SM2 checks)' % i, ok, why)


def cmd_cert(a):
    cert = load_certs(a.cert)[0]
    issuer = load_certs(a.ca)[0]
    report('certificate signed by issuer (GB/T 32918.2 equation, ID %r)' % a.id, cert_signed_by(cert, issuer, a.id.encode()))
    report('issuer name chains', cert.issuer.dump() == issuer.subject.dump())


def cmd_raw(a):
    data = open(a.pub, 'rb').read()
    der = pem.unarmor(data)[2] if pem.detect(data) else data
    spki = keys.PublicKeyInfo.load(der)
    report('public key is SM2', is_sm2(spki))
    report('raw SM2 signature (GB/T 32918.2 equation, ID %r)' % a.id,
           sm2_verify(point_hex(spki), open(a.msg, 'rb').read(), open(a.sig, 'rb').read(), a.id.encode()))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('cms')
    c.add_argument('sig')
    c.add_argument('--content')
    c.add_argument('--imprint-of')
    c.add_argument('--ca', action='append', default=[])
    c.add_argument('--id', default='1234567812345678')
    c = sub.add_parser('cert')
    c.add_argument('cert')
    c.add_argument('--ca', required=True)
    c.add_argument('--id', default='1234567812345678')
    c = sub.add_parser('raw')
    c.add_argument('pub')
    c.add_argument('msg')
    c.add_argument('sig')
    c.add_argument('--id', default='1234567812345678')
    a = ap.parse_args()
    try:
        {'cms': cmd_cms, 'cert': cmd_cert, 'raw': cmd_raw}[a.cmd](a)
    except Exception as e:  # malformed input is a failed check, not a crash
        report('input readable', False, '%s: %s' % (type(e).__name__, e))
    print('%d passed, %d failed' % (passed, failed))
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == '__main__':
    main()
