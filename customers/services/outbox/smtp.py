"""One SMTP transaction at a time on an open smtplib connection, with hooks around the body."""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Callable


class OutboxConnectionError(Exception):
    """The SMTP server could not be reached or dropped the connection; try again later."""


def smtp_refused(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal, as smtplib's sendmail does: 421 ends the session, else RSET."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


def smtp_send(
    smtp: smtplib.SMTP,
    *,
    sender: str,
    rcpt: str,
    data: bytes,
    before_body: Callable[[], None],
    meanwhile: Callable[[], None],
) -> None:
    """One SMTP transaction, as smtplib's sendmail, with two hooks around the body.

    before_body runs after the server said 354 and before the body (the moment from
    which the server may accept the message); meanwhile runs while the server digests
    the body, so this process works on the next message instead of waiting.
    `data` is ready for the wire (mime.message_mime); sender and rcpt are bare addresses.
    """
    smtp.putcmd("mail", f"FROM:<{sender}>")
    code, reply = smtp.getreply()
    if code != 250:
        smtp_refused(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    smtp.putcmd("rcpt", f"TO:<{rcpt}>")
    code, reply = smtp.getreply()
    if code not in (250, 251):
        smtp_refused(smtp, code)
        raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        smtp_refused(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    try:
        before_body()
    except BaseException:
        smtp.close()  # mid-DATA: drop the session so the server discards the message
        raise
    smtp.send(data)
    meanwhile()
    code, reply = smtp.getreply()
    if code != 250:
        smtp_refused(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def smtp_connection_lost(exc: Exception) -> bool:
    """Whether a failed send ended the session (the batch stops) or refused only this
    message (the connection goes on). smtplib's errors are OSErrors too."""
    if not isinstance(exc, smtplib.SMTPException):
        return True
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    if getattr(exc, "smtp_code", None) == 421:
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in exc.recipients.values())
    return False
