#!/usr/bin/env python3
"""pyHanko's side of bench/flows.sh: sign FILE (a one-page PDF) for SECONDS in this process, as
medsign's PDF flow does — RSA-2048 key, a visible signature with the seal image and three lines of
text in the box [40 60 200 130] of page 1, a signature timestamp from TSA_URL (RFC 3161 over
HTTP) — and print signatures/s. The text is Chinese in medsign's own CJK font (FONT), subset into
each PDF as medsign does, or with FONT `latin` English in pyHanko's built-in font (nothing
embedded: the stricter baseline). Its Python start is not counted."""
import io
import sys
import time

from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko.stamp import TextStampStyle
from PIL import Image

path, key, cert, seal, font, tsa, secs = sys.argv[1:8]
data = open(path, "rb").read()
signer = signers.SimpleSigner.load(key, cert)
stamper = timestamps.HTTPTimeStamper(tsa)
if font == "latin":  # the stricter baseline: Latin lines in pyHanko's built-in font, nothing embedded
    style = TextStampStyle(
        stamp_text="County Hospital (e-seal)\nSigned %(ts)s\nCertificate 0A1B2C3D",
        background=PdfImage(Image.open(seal)),
    )
else:
    style = TextStampStyle(
        stamp_text="某某县人民医院（电子签章）\n签署时间 %(ts)s\n证书 0A1B2C3D",
        background=PdfImage(Image.open(seal)),
        text_box_style=TextBoxStyle(font=GlyphAccumulatorFactory(font)),
    )


def sign_once():
    w = IncrementalPdfFileWriter(io.BytesIO(data))
    meta = signers.PdfSignatureMetadata(field_name="Seal", subfilter=fields.SigSeedSubFilter.PADES)
    spec = fields.SigFieldSpec("Seal", on_page=0, box=(40, 60, 200, 130))
    pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=stamper, stamp_style=style, new_field_spec=spec)
    # the same room for the signature medsign reserves: pyHanko then skips the trial signature
    # it otherwise makes to size the container
    out = pdf_signer.sign_pdf(w, bytes_reserved=24 * 1024)
    return out.getvalue()


first = sign_once()
assert b"/ByteRange" in first and b"/ETSI.CAdES.detached" in first, "pyHanko did not sign"
n, t = 0, time.perf_counter()
while time.perf_counter() - t < float(secs):
    sign_once()
    n += 1
print(n / (time.perf_counter() - t))
