"""uvicorn's HTTP protocol, answering what uvicorn refuses itself in the API's envelope.

A request line or header over the parser's limits, or a byte HTTP does not allow in a
header (a DEL in an Idempotency-Key, say), never reaches Django: uvicorn answers 400 with a
plain-text body of its own. Partners' clients parse every error as the envelope, so the
same 400 goes out as a validation_error envelope instead. Loaded by config.serve as
uvicorn's `http` protocol; nothing else about the protocol changes.
"""

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from orders.codes import ErrorCode, error_body

_BODY = orjson.dumps(
    error_body(
        ErrorCode.VALIDATION_ERROR,
        "The request is not valid HTTP.",
        {"request": ["A request line or header is too long, or holds a character HTTP does not allow."]},
    )
)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_BODY)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                _BODY,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
