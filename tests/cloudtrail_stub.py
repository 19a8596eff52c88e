"""A few-line CloudTrail endpoint on 127.0.0.1 (JSON 1.1, X-Amz-Target): DescribeTrails and ListPublicKeys.

moto has no ListPublicKeys, so the real `aws cloudtrail validate-logs` and fedledger's
ListPublicKeys path both talk to this stub (botocore honours AWS_ENDPOINT_URL_CLOUDTRAIL).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def cloudtrail_stub(trails: list[dict[str, Any]], keys: list[tuple[bytes, datetime, datetime]]) -> Iterator[str]:
    """Serve *trails* (DescribeTrails) and *keys* (PKCS#1 DER, valid from, valid to) on a free port."""
    import hashlib

    public_keys = [{
        # A JSON-protocol blob: base64 of the PKCS#1 DER (the aws CLI leaves blobs encoded, boto3 decodes).
        "Value": base64.b64encode(der).decode(),
        "ValidityStartTime": start.timestamp(),
        "ValidityEndTime": end.timestamp(),
        "Fingerprint": hashlib.md5(der, usedforsecurity=False).hexdigest(),
    } for der, start, end in keys]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            target = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            if target == "DescribeTrails":
                answer: dict[str, Any] = {"trailList": trails}
            elif target == "ListPublicKeys":
                lo, hi = body.get("StartTime", 0), body.get("EndTime", 2**40)
                answer = {"PublicKeyList": [k for k in public_keys
                                            if k["ValidityStartTime"] <= hi and k["ValidityEndTime"] >= lo]}
            else:
                self.send_response(400)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                data = json.dumps({"__type": "UnknownOperationException", "message": target}).encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
