"""The signed claim link of a stock notice: which notice, and until when.

Made when the email is rendered (not when the notice is written, so enqueueing a hundred
thousand notices signs nothing) and read by the claim page. The signature is the whole
proof: a link whose text was changed fails it, and the claim page answers 400. The
expiry in the link is the window's as it was told; the window's own row stays the
judge of whether it is still open.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

CLAIM_SALT = "launchday.orders.stock-notice-claim"


@dataclass(frozen=True)
class ClaimLink:
    notice_id: int
    expires_at: datetime.datetime


def claim_token_make(*, notice_id: int, expires_at: datetime.datetime) -> str:
    # Whole seconds, rounded up: a link must never read as ended before its window does.
    expires = math.ceil(expires_at.timestamp())
    return signing.dumps({"n": notice_id, "x": expires}, salt=CLAIM_SALT, compress=False)


def claim_token_read(*, token: str) -> ClaimLink | None:
    """The link's notice and expiry, or None when the token was not signed by us."""
    try:
        data = signing.loads(token, salt=CLAIM_SALT)
        return ClaimLink(
            notice_id=int(data["n"]),
            expires_at=datetime.datetime.fromtimestamp(int(data["x"]), tz=datetime.UTC),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError, OverflowError):
        return None


def claim_url(*, notice_id: int, expires_at: datetime.datetime) -> str:
    token = claim_token_make(notice_id=notice_id, expires_at=expires_at)
    return f"{settings.SITE_URL.rstrip('/')}/upgrade/claim/{token}/"
