"""The message as SMTP DATA bytes, written directly.

Django's EmailMultiAlternatives builds a tree of email.mime objects and flattens it with
the generator: about 2 ms an email, more than the SMTP exchange itself. The message is
always the same shape (multipart/alternative: text/plain then text/html, UTF-8), so it
is written directly: 7bit when a part is ASCII with short lines, else quoted-printable
(safe without 8BITMIME); non-ASCII headers as RFC 2047 words, addresses through
Django's sanitize_address. test_outbox_render parses the bytes back with the stdlib.
"""

from __future__ import annotations

import binascii
import re
import uuid
from email.header import Header
from email.utils import formatdate, parseaddr

from django.conf import settings
from django.core.mail.message import sanitize_address

from customers.services.outbox.render import RenderedEmail

_SAFE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~@-]+")


def _header_value(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("a header value may not contain a line break")
    if value.isascii() and len(value) < 900:
        return value
    return Header(value, "utf-8").encode()


def _address(value: str) -> str:
    if _SAFE_ADDRESS.fullmatch(value):
        return value
    return sanitize_address(value, "utf-8")


def envelope_address(value: str) -> str:
    """The bare address for MAIL FROM / RCPT TO."""
    if _SAFE_ADDRESS.fullmatch(value):
        return value
    return parseaddr(sanitize_address(value, "utf-8"))[1]


def _mime_part(content_type: str, body: str) -> str:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if body.isascii() and all(len(line) <= 998 for line in body.split("\n")):
        encoding = "7bit"
    else:
        encoding = "quoted-printable"
        body = binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii")
    return f'Content-Type: {content_type}; charset="utf-8"\nContent-Transfer-Encoding: {encoding}\n\n{body}\n'


def message_mime(*, rendered: RenderedEmail, from_header: str, to: str) -> bytes:
    """The message as SMTP DATA: CRLF lines, leading dots doubled, ending in CRLF.CRLF."""
    text = _mime_part("text/plain", rendered.text)
    html = _mime_part("text/html", rendered.html)
    boundary = f"=_ld{uuid.uuid4().hex}"
    head = [
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "MIME-Version: 1.0",
        f"Subject: {_header_value(rendered.subject)}",
        f"From: {from_header}",
        f"To: {_address(to)}",
        f"Date: {formatdate(localtime=settings.EMAIL_USE_LOCALTIME)}",
    ]
    head += [f"{name}: {_header_value(value)}" for name, value in rendered.headers.items()]
    data = "\n".join(head) + f"\n\n--{boundary}\n{text}--{boundary}\n{html}--{boundary}--\n"
    data = data.replace("\n", "\r\n")
    if "\r\n." in data:
        data = data.replace("\r\n.", "\r\n..")
    return (data + ".\r\n").encode("ascii")
