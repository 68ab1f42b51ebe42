#!/usr/bin/env python3
"""pyHanko's side of bench/pdf-verify.sh: validate every signature of FILE (as `pyhanko sign
validate` does, trust roots + CRL, no fetching) in a loop for SECONDS; prints files/s."""
import io
import sys
import time

from asn1crypto import crl, pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

path, root, chain, crl_path, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
certs = lambda p: [x509.Certificate.load(d) for _, _, d in pem.unarmor(open(p, "rb").read(), multiple=True)]
roots, others, crls = certs(root), certs(chain), [crl.CertificateList.load(open(crl_path, "rb").read())]
data = open(path, "rb").read()
n, t = 0, time.perf_counter()
while time.perf_counter() - t < secs:
    r = PdfFileReader(io.BytesIO(data))
    for s in r.embedded_signatures:
        vc = ValidationContext(trust_roots=roots, other_certs=others, crls=crls, allow_fetching=False)
        st = validate_pdf_signature(s, signer_validation_context=vc)
        assert st.bottom_line, st.pretty_print_details()
    n += 1
print(n / (time.perf_counter() - t))
