"""R7.4.1, R7.4.2, R7.4.5, R7.4.7, R7.4.8 (with MEDSIGN_DOCTOR), R7.4.9–R7.4.13 with medsign-client:
MEDSIGN_URL and MEDSIGN_TOKEN (scopes users:read users:write sign verify). Run by crates/cli/tests/client.rs against a live server."""
import http.server
import io
import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from medsign_client import Client, MedsignError, webhook_is_signed  # noqa: E402

c = Client.signed(os.environ.get("MEDSIGN_URL", "https://sign.hospital.example"), os.environ["MEDSIGN_TOKEN"])
c.create_users([{"employee_no": "8101", "name": "褚医生"}, {"employee_no": "8102", "name": "卫护士", "role": "nurse"}])
assert c.user("8101")["name"] == "褚医生"
# a query typed unescaped is signed as it is sent
assert c.call("GET", "/api/v1/users", query="q=褚")["total"] == 1
try:
    c.user("no-such-user")
    raise SystemExit("a missing user was found")
except MedsignError as e:
    assert e.status == 404 and e.code == "not_found" and e.request_id, e

# the hospital system's webhook receiver (here: a thread on loopback)
hooks = queue.Queue()


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        hooks.put((self.headers["X-Medsign-Timestamp"], body, self.headers["X-Medsign-Signature"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


receiver = http.server.HTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
callback = f"http://127.0.0.1:{receiver.server_address[1]}/medsign"

# a data flow sealed at once; its CMS downloaded by the document number and verified
f = c.create_flow({"kind": "data", "title": "检验报告 S8101", "content": "WBC 6.1", "signers": [{"seal": "hospital"}],
                   "callback_url": callback})
assert f["state"] == "completed", f
cms = io.BytesIO()
assert c.download(f["doc_no"], cms, signature="p7s") > 500
assert c.verify_data(cms.getvalue(), b"WBC 6.1")["indication"] == "TOTAL_PASSED"
# its webhook, checked before it is believed
ts, body, sig = hooks.get(timeout=30)
assert webhook_is_signed(os.environ["MEDSIGN_TOKEN"], ts, body, sig), "an unsigned webhook"
assert not webhook_is_signed(os.environ["MEDSIGN_TOKEN"], ts, body + b" ", sig), "a changed body passed"
assert not webhook_is_signed(os.environ["MEDSIGN_TOKEN"], ts, body, "签名"), "a garbled header passed"

# a lab report from the template, sealed; the PDF verified
lab = {"hospital": "某县人民医院", "patient_name": "王小明", "gender": "男", "age": "45岁", "patient_id": "P8101",
       "sample_no": "S8101", "department": "内科", "specimen": "血清",
       "items": [{"code": "GLU", "name": "葡萄糖", "result": "5.1", "unit": "mmol/L", "reference": "3.9–6.1"}]}
f = c.create_flow({"kind": "file", "title": "检验报告单 S8101", "template_id": "lab-report", "data": lab,
                   "signers": [{"seal": "hospital", "field": "lab_seal"}]})
pdf = io.BytesIO()
c.download(f["id"], pdf)
assert c.verify_file(pdf.getvalue())["indication"] == "TOTAL_PASSED"

# a scan-sign the doctor has not done yet: waiting with its QR ticket, then revoked
f = c.create_flow({"kind": "data", "title": "病程记录 ZY8101", "content": "……", "signers": [{"employee_no": "8101", "mode": "scan"}]})
assert f["state"] == "signing" and f["ticket"]["deep_link"], f
assert c.flow(f["doc_no"])["state"] == "signing"
assert c.revoke(f["doc_no"], "示例 / example")["state"] == "revoked"

# R7.4.8 a prescription scan-signed by a doctor whose phone is bound (MEDSIGN_DOCTOR): the ticket's link
# (its QR code goes on the PC screen) is printed; the doctor scans it while this polls; then the signed
# PDF is downloaded and verified
doctor = os.environ.get("MEDSIGN_DOCTOR")
if doctor:
    rx = {"hospital": "某县人民医院", "category": "普通", "fee_type": "医保", "department": "内科", "outpatient_no": "MZ8103",
          "patient_name": "王小明", "gender": "男", "age": "45岁", "diagnosis": "上呼吸道感染", "amount": "¥56.80",
          "items": [{"drug": "阿莫西林胶囊 0.25g×24粒", "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"}]}
    p = c.create_flow({"kind": "file", "title": "门诊处方笺 MZ8103", "template_id": "outpatient-prescription", "data": rx,
                       "signers": [{"employee_no": doctor, "mode": "scan", "field": "doctor"},
                                   {"seal": "hospital", "field": "hospital_seal"}]})
    print("scan:", p["ticket"]["deep_link"], flush=True)
    deadline = time.monotonic() + 120
    while (state := c.flow(p["id"])["state"]) in ("signing", "pending"):
        assert time.monotonic() < deadline, "the doctor did not sign in time"
        time.sleep(0.5)
    assert state == "completed", state
    signed = io.BytesIO()
    c.download(p["doc_no"], signed)
    assert c.verify_file(signed.getvalue())["indication"] == "TOTAL_PASSED"
print("ok:", f["doc_no"])
