"""Independent judge for medsign's CA (issue #4): pyhanko-certvalidator validates a staff
certificate against our root, fetching revocation status from the OCSP responder named in the
certificate (AIA) — OCSP is required for the leaf, so a responder that does not answer properly
fails the check.

usage: certvalidator_check.py LEAF.pem ROOT.pem ISSUING.pem
prints one JSON line {"valid": bool, "error": str|null}; exit 0 when valid, 1 when not.
"""
import asyncio
import json
import sys

from asn1crypto import pem, x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)


def load(path):
    data = open(path, "rb").read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def main():
    leaf, root, issuing = (load(p) for p in sys.argv[1:4])
    policy = CertRevTrustPolicy(
        RevocationCheckingPolicy(
            ee_certificate_rule=RevocationCheckingRule.OCSP_REQUIRED,
            intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK,
        )
    )
    ctx = ValidationContext(trust_roots=[root], other_certs=[issuing], allow_fetching=True, revinfo_policy=policy)
    validator = CertificateValidator(leaf, intermediate_certs=[issuing], validation_context=ctx)
    try:
        asyncio.run(validator.async_validate_usage({"digital_signature", "non_repudiation"}))
        print(json.dumps({"valid": True, "error": None}))
        return 0
    except Exception as e:  # noqa: BLE001 — report whatever the validator says
        print(json.dumps({"valid": False, "error": f"{type(e).__name__}: {e}"}, ensure_ascii=False))
        return 1


if __name__ == "__main__":
    sys.exit(main())
