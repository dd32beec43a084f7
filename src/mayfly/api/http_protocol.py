"""uvicorn's HTTP protocol, answering requests it cannot parse in Cloudflare's envelope.

httptools refuses a request line or headers over 80 KiB (a KV key of 100 KB in the URL, say) and
malformed HTTP before the app sees anything; uvicorn then answers a plain-text 400. The status
stays; the body becomes the API's JSON error.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

UNPARSABLE_CODE = 10021  # a validation error, as every other bad input


class EnvelopeHttpProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        body = json.dumps(
            {
                "success": False,
                "errors": [
                    {
                        "code": UNPARSABLE_CODE,
                        "message": "The request could not be read: malformed HTTP, or a URL "
                        "or headers over 80 KiB (KV keys are at most 512 bytes).",
                    }
                ],
                "messages": [],
                "result": None,
            }
        ).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()
