#!/usr/bin/env python3
"""Long-term validation checks for medsign's interop tests (issue #16; not medsign code).

  ltv_check.py pyhanko FILE.pdf --trust ROOT.pem --level lt|lta
      pyHanko, nothing fetched: every signature of FILE validates (with its signature timestamp)
      from the DSS alone with revocation information required for every certificate; with lta
      also every document timestamp, and pyHanko's AdES long-term validation
      (ades_lta_validation, ETSI EN 319 102-1, document timestamps as evidence record) passes.
  ltv_check.py sm2 FILE.pdf --ca ROOT.pem [--ca ...]
      where pyHanko cannot judge SM2: the DSS read with pyHanko's PDF reader and judged with the
      independent SM2 checker (sm2_check.py): every OCSP answer and CRL in it verifies (SM2
      equation) under a certificate that chains to a CA; every non-root certificate in the DSS
      and in the signatures has an OCSP answer or a CRL of its issuer there; every signature has
      its /VRI entry (SHA-1 of its /Contents); every document timestamp is a token whose
      messageImprint is the hash of the bytes it covers and whose signer chains to a CA.

Prints one PASS/FAIL line per check and 'N passed, M failed'; exit 0 iff none failed.
"""
import argparse
import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sm2_check  # noqa: E402
from sm2_check import report, load_certs, check_chain, sm2_verify, point_hex  # noqa: E402

from asn1crypto import crl as acrl, ocsp as aocsp, x509  # noqa: E402


def cmd_pyhanko(a):
    # Two judgements by pyHanko 0.38, neither fetching anything, so only what the PDF carries counts:
    # - every signature (and, for lta, every document timestamp) validates against a validation
    #   context made from the document's DSS alone with revocation information required for every
    #   certificate of every path ('require': no OCSP answer or CRL -> failure): the B-LT criterion
    #   (what pyHanko's former validate_pdf_ltv_signature did for PADES_LT);
    # - lta: pyHanko's AdES long-term validation (ades_lta_validation, ETSI EN 319 102-1), which
    #   uses the chain of document timestamps as evidence record. It needs proof of existence for
    #   every certificate, which only document timestamps give, so it cannot judge B-LT files.
    import asyncio
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.dss import DocumentSecurityStore
    from pyhanko.sign.validation.pdf_embedded import (
        async_validate_pdf_signature, async_validate_pdf_timestamp)
    from pyhanko.sign.validation.policy_decl import (
        PdfSignatureValidationSpec, RevocationInfoGatheringSpec, RevinfoOnlineFetchingRule,
        SignatureValidationSpec)
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko_certvalidator.authority import CertTrustAnchor
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule)
    from pyhanko_certvalidator.registry import SimpleTrustManager

    roots = [c for p in a.trust for c in load_certs(p)]
    with open(a.pdf, 'rb') as f:
        r = PdfFileReader(f)
        sigs = r.embedded_regular_signatures
        report('signatures found', len(sigs) > 0, str(len(sigs)))
        try:
            dss = DocumentSecurityStore.read_dss(r)
        except Exception as e:  # NoDSSFoundError
            report('the document has a DSS', False, type(e).__name__)
            return
        report('the document has a DSS', True, '%d certificates, %d OCSP answers, %d CRLs'
               % (len(list(dss.load_certs())), len(dss.ocsps), len(dss.crls)))

        def dss_context():
            return dss.as_validation_context({'trust_roots': roots, 'allow_fetching': False,
                                              'revocation_mode': 'require'})

        for s in sigs:
            st = asyncio.run(async_validate_pdf_signature(
                s, dss_context(), ts_validation_context=dss_context()))
            ts = st.timestamp_validity
            ts_ok = ts is not None and ts.intact and ts.valid and ts.trusted
            report('pyHanko from the DSS alone, revocation info required: %s %s, signature timestamp %s'
                   % (s.field_name, st.summary(), 'trusted' if ts_ok else 'NOT trusted'),
                   st.bottom_line and ts_ok)
        if a.level == 'lta':
            stamps = r.embedded_timestamp_signatures
            report('document timestamp present', len(stamps) > 0, str(len(stamps)))
            for t in stamps:
                st = asyncio.run(async_validate_pdf_timestamp(t, validation_context=dss_context()))
                report('pyHanko document timestamp %s from the DSS alone: %s (%s)'
                       % (t.field_name, st.summary(), st.timestamp),
                       st.intact and st.valid and st.trusted)
            required = RevocationCheckingPolicy(
                ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
                intermediate_ca_cert_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED)
            policy = CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[CertTrustAnchor(x) for x in roots]),
                revinfo_policy=CertRevTrustPolicy(required))
            spec = PdfSignatureValidationSpec(SignatureValidationSpec(
                cert_validation_policy=policy,
                revinfo_gathering_policy=RevocationInfoGatheringSpec(
                    online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY)))
            for s in sigs:
                res = asyncio.run(ades_lta_validation(s, spec))
                report('pyHanko AdES LTA validation of %s: %s' % (s.field_name, res.ades_subindic),
                       res.ades_subindic == AdESPassed.OK, res.failure_msg or '')
                # the chain of document timestamps after the signature validated as evidence
                # record (pyHanko proceeds without it, with a warning, when it does not)
                report('document timestamp chain of %s validated (oldest %s)'
                       % (s.field_name, res.oldest_evidence_record_timestamp),
                       res.oldest_evidence_record_timestamp is not None)


def raw_streams(dss, key):
    arr = dss.get(key)
    return [bytes(o.get_object().data) for o in arr] if arr is not None else []


def cmd_sm2(a):
    from pyhanko.pdf_utils.reader import PdfFileReader

    anchors = [c for p in a.ca for c in load_certs(p)]
    uid = a.id.encode()
    data = open(a.pdf, 'rb').read()
    with open(a.pdf, 'rb') as f:
        r = PdfFileReader(f)
        dss = r.root.get('/DSS')
        report('catalog has a /DSS', dss is not None)
        if dss is None:
            return
        dss = dss.get_object()
        certs = [x509.Certificate.load(b) for b in raw_streams(dss, '/Certs')]
        ocsps = [aocsp.OCSPResponse.load(b) for b in raw_streams(dss, '/OCSPs')]
        crls = [acrl.CertificateList.load(b) for b in raw_streams(dss, '/CRLs')]
        report('DSS holds certificates, OCSP answers and CRLs', certs and ocsps and crls,
               '%d / %d / %d' % (len(certs), len(ocsps), len(crls)))
        covered = set()  # (issuer DER, serial) with revocation information
        for i, o in enumerate(ocsps):
            report('OCSP #%d successful' % i, o['response_status'].native == 'successful')
            basic = o['response_bytes']['response'].parsed
            rcerts = list(basic['certs']) if basic['certs'].native else []
            tbs = basic['tbs_response_data']
            signer = None
            for c in rcerts + certs:
                if sm2_verify(point_hex(c['tbs_certificate']['subject_public_key_info']), tbs.dump(),
                              basic['signature'].native, uid):
                    signer = c
                    break
            report('OCSP #%d SM2 signature' % i, signer is not None)
            if signer is not None:
                ok, why = check_chain(signer, certs + rcerts, anchors, uid)
                report('OCSP #%d responder chains to a CA' % i, ok, why)
            for sr in tbs['responses']:
                report('OCSP #%d status good' % i, sr['cert_status'].name == 'good', sr['cert_status'].name)
                covered.add(sr['cert_id']['serial_number'].native)
        for i, c in enumerate(crls):
            tbs = c['tbs_cert_list']
            issuer = [x for x in certs if x.subject.dump() == tbs['issuer'].dump()]
            ok = any(sm2_verify(point_hex(x['tbs_certificate']['subject_public_key_info']), tbs.dump(),
                                c['signature'].native, uid) for x in issuer)
            report('CRL #%d SM2 signature by %s' % (i, tbs['issuer'].human_friendly), ok)
            if ok:
                revoked = {e['user_certificate'] for e in (tbs['revoked_certificates'].native or [])}
                for x in certs:
                    if x.issuer.dump() == tbs['issuer'].dump():
                        report('CRL #%d does not list %s' % (i, x.subject.human_friendly),
                               x.serial_number not in revoked)
                        covered.add(('crl', x.serial_number))
        for c in certs:
            if c.self_signed != 'no':
                continue
            has = c.serial_number in covered or ('crl', c.serial_number) in covered
            is_responder = c.extended_key_usage_value is not None and 'ocsp_signing' in c.extended_key_usage_value.native
            report('revocation information for %s' % c.subject.human_friendly, has or is_responder)
        vri = dss.get('/VRI')
        vri = vri.get_object() if vri is not None else {}
        for s in r.embedded_signatures:
            contents = bytes(s.sig_object.raw_get('/Contents'))
            key = '/' + hashlib.sha1(contents).hexdigest().upper()
            if s.sig_object.get('/Type') == '/DocTimeStamp':
                br = s.byte_range
                signed = data[br[0]:br[0] + br[1]] + data[br[2]:br[2] + br[3]]
                with tempfile.TemporaryDirectory() as d:
                    tok = os.path.join(d, 'ts.tsr')
                    cov = os.path.join(d, 'covered.bin')
                    open(tok, 'wb').write(contents[:der_len(contents)])
                    open(cov, 'wb').write(signed)
                    ns = argparse.Namespace(sig=tok, content=None, imprint_of=cov, ca=a.ca, id=a.id)
                    sm2_check.cmd_cms(ns)
                report('document timestamp %s covers the file up to its own revision' % s.field_name,
                       br[0] == 0 and br[2] + br[3] <= len(data))
            else:
                report('/VRI entry of %s' % s.field_name, key in vri)


def der_len(b):
    if b[1] & 0x80 == 0:
        return 2 + b[1]
    n = b[1] & 0x7f
    return 2 + n + int.from_bytes(b[2:2 + n], 'big')


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('pyhanko')
    c.add_argument('pdf')
    c.add_argument('--trust', action='append', required=True)
    c.add_argument('--level', choices=['lt', 'lta'], required=True)
    c = sub.add_parser('sm2')
    c.add_argument('pdf')
    c.add_argument('--ca', action='append', default=[])
    c.add_argument('--id', default='1234567812345678')
    a = ap.parse_args()
    try:
        {'pyhanko': cmd_pyhanko, 'sm2': cmd_sm2}[a.cmd](a)
    except Exception as e:  # malformed input is a failed check, not a crash
        report('input readable', False, '%s: %s' % (type(e).__name__, e))
    print('%d passed, %d failed' % (sm2_check.passed, sm2_check.failed))
    sys.exit(1 if sm2_check.failed else 0)


if __name__ == '__main__':
    main()
