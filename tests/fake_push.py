"""A fake push service on 127.0.0.1 for the Web Push tests, and the browser's side of a
subscription: a P-256 key pair and auth secret made here, to decrypt what the server sends.

The fake records every POST (path, headers, body), answers with `status`, and while `is_holding`
keeps each request open until release() (bounded), like a push service that hangs.
"""

import base64
import json
import os
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HOLD_LIMIT_SECONDS = 120


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """What a browser keeps for one push subscription: its private key and auth secret."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth_secret = os.urandom(16)

    def subscription(self, endpoint: str) -> dict:
        point = self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return {"endpoint": endpoint, "keys": {"p256dh": b64url(point),
                                               "auth": b64url(self.auth_secret)}}

    def decrypt(self, body: bytes) -> dict:
        """The JSON message of an aes128gcm Web Push body (RFC 8291)."""
        plain = http_ece.decrypt(body, private_key=self.private_key,
                                 auth_secret=self.auth_secret, version="aes128gcm")
        return json.loads(plain)


def vapid_claims(authorization: str, public_key_b64: str) -> dict:
    """The claims of a `vapid t=<JWT>, k=<key>` header (RFC 8292), after checking that k is the
    server's key and the ES256 signature verifies with it; AssertionError otherwise."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == public_key_b64
    token = fields["t"]
    signed, _, signature = token.rpartition(".")
    raw = unb64url(signature)
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the VAPID signature does not verify with the served key") from None
    return json.loads(unb64url(signed.split(".")[1]))


class FakePushService:
    def __init__(self, status: int = 201):
        self.status = status
        self.received: queue.Queue = queue.Queue()
        self.is_holding = False
        self.holding = threading.Event()  # set while a request is being held open
        self.released = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                service.received.put((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if service.is_holding:
                    service.holding.set()
                    service.released.wait(HOLD_LIMIT_SECONDS)
                self.send_response(service.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def next_push(self, timeout_seconds: float = 60.0):
        """The next request (path, headers with lower-case names, body); fails the test if none
        comes."""
        try:
            return self.received.get(timeout=timeout_seconds)
        except queue.Empty:
            raise AssertionError(f"no push arrived within {timeout_seconds}s") from None
