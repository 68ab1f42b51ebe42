"""medsign-client: a client of medsign's hospital-system API (/api/v1; docs/integration.md).

Client.signed(base, token) signs every request with HMAC-SM3 over
method, path, query, timestamp, nonce and SM3(body) — the key derived from the token's secret,
which is never sent. Client.bearer(base, token) sends the token instead (HTTPS only).
The creating calls the server deduplicates (users, imports, flows) carry an Idempotency-Key and
are retried with it after a connection failure, a 5xx or 409 idempotency_in_progress, so a flow
whose answer was lost is made once; GETs are retried too, other calls are not.
"""

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse

import requests

__all__ = ["Client", "MedsignError", "webhook_is_signed", "request_key", "sign_request"]

# the creating calls the server answers once per Idempotency-Key (so they are retried with it)
IDEMPOTENT = ("/api/v1/users", "/api/v1/users/import", "/api/v1/sign-flows")


def SM3(data=b""):
    """SM3 from Python's OpenSSL (1.1.1 or later has it)."""
    return hashlib.new("sm3", data)


def request_key(secret: str) -> bytes:
    """The request-signing key an app derives from its secret."""
    return hmac.new(secret.encode(), b"medsign/api-hmac/v1", SM3).digest()


def sign_request(key: bytes, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """X-Signature: hex HMAC-SM3 over method, path, query, timestamp, nonce, hex SM3(body), one per line."""
    text = "\n".join([method, path, query, timestamp, nonce, SM3(body).hexdigest()]).encode()
    return hmac.new(key, text, SM3).hexdigest()


def webhook_is_signed(token_or_secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Is a webhook genuine? (X-Medsign-Timestamp, raw body, X-Medsign-Signature.) Refuse old
    timestamps yourself, as your policy says."""
    if not (isinstance(timestamp, str) and isinstance(signature, str) and isinstance(body, bytes)):
        return False
    secret = token_or_secret.split(".", 1)[1] if "." in token_or_secret else token_or_secret
    want = hmac.new(request_key(secret), timestamp.encode() + b"\n" + body, SM3).hexdigest().encode()
    return hmac.compare_digest(want, signature.strip().lower().encode("utf-8", "replace"))


class MedsignError(Exception):
    """The server's error envelope."""

    def __init__(self, status, code, message, request_id):
        super().__init__(f"{status} {code}: {message} (request {request_id})")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


def _segment(s: str) -> str:
    if s in ("", ".", ".."):
        raise ValueError(f"not usable in a path: {s!r}")
    return urllib.parse.quote(s, safe="")


class Client:
    def __init__(self, base, token, signed, retries=4, timeout=120):
        if not base.startswith(("http://", "https://")):
            raise ValueError("the base URL must start with http(s)://")
        app_id, sep, secret = token.partition(".")
        if not (sep and app_id and secret):
            raise ValueError("the token must be app_id.secret")
        self.base, self.retries, self.timeout = base.rstrip("/"), retries, timeout
        self._app_id, self._token = app_id, token
        self._key = request_key(secret) if signed else None
        self._http = requests.Session()

    @classmethod
    def signed(cls, base, token, **kw):
        return cls(base, token, True, **kw)

    @classmethod
    def bearer(cls, base, token, **kw):
        return cls(base, token, False, **kw)

    def _send(self, method, path, query="", body=None, stream=False):
        method = method.upper()
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        # only the creating calls the server answers once per Idempotency-Key are retried
        idem = secrets.token_hex(16) if method == "POST" and path in IDEMPOTENT else None
        for attempt in range(self.retries + 1):
            headers = {"Content-Type": "application/json"} if data else {}
            if idem:
                headers["Idempotency-Key"] = idem
            url = self.base + path + ("?" + query if query else "")
            req = self._http.prepare_request(requests.Request(method, url, data=data or None, headers=headers))
            if self._key is None:
                req.headers["Authorization"] = f"Bearer {self._token}"
            else:
                # signed over the path and query as they are sent
                sent = urllib.parse.urlsplit(req.url)
                ts, nonce = str(int(time.time())), secrets.token_hex(12)
                req.headers.update({"X-App-Id": self._app_id, "X-Timestamp": ts, "X-Nonce": nonce,
                                    "X-Signature": sign_request(self._key, method, sent.path, sent.query, ts, nonce, data)})
            try:
                r = self._http.send(req, timeout=self.timeout, stream=stream)
            except requests.RequestException:
                if attempt < self.retries and (idem or method == "GET"):
                    time.sleep(min(0.5 * 2 ** attempt, 16))
                    continue
                raise
            if r.ok:
                return r
            try:
                env = r.json()
            except ValueError:
                env = {}
            err = MedsignError(r.status_code, env.get("code", ""), env.get("message", r.text[:200]), env.get("request_id", ""))
            again = r.status_code >= 500 or (r.status_code == 409 and err.code == "idempotency_in_progress")
            if again and attempt < self.retries and (idem or method == "GET"):
                time.sleep(min(0.5 * 2 ** attempt, 16))
                continue
            raise err

    def call(self, method, path, query="", body=None):
        """Any call; `path` and `query` are signed as they are sent (escaped where needed)."""
        r = self._send(method, path, query, body)
        return r.json() if r.content else None

    def create_users(self, users):
        return self.call("POST", "/api/v1/users", body=users)

    def user(self, employee_no):
        return self.call("GET", f"/api/v1/users/{_segment(employee_no)}")

    def create_flow(self, flow):
        return self.call("POST", "/api/v1/sign-flows", body=flow)

    def flow(self, id_or_doc_no):
        return self.call("GET", f"/api/v1/sign-flows/{_segment(id_or_doc_no)}")

    def revoke(self, id_or_doc_no, reason):
        return self.call("POST", f"/api/v1/sign-flows/{_segment(id_or_doc_no)}/revoke", body={"reason": reason})

    def verify_data(self, cms: bytes, data: bytes):
        import base64
        return self.call("POST", "/api/v1/verify/data",
                         body={"signature": base64.b64encode(cms).decode(), "data": base64.b64encode(data).decode()})

    def verify_file(self, pdf: bytes):
        import base64
        return self.call("POST", "/api/v1/verify/file", body={"file": base64.b64encode(pdf).decode()})

    def download(self, id_or_doc_no, out, signature=None) -> int:
        """Write a completed flow's signed file to the binary file `out` as it arrives; the bytes written."""
        query = f"signature={_segment(signature)}" if signature else ""
        r = self._send("GET", f"/api/v1/sign-flows/{_segment(id_or_doc_no)}/file", query, stream=True)
        n = 0
        for chunk in r.iter_content(64 * 1024):
            out.write(chunk)
            n += len(chunk)
        return n
