"""Standard Webhooks signing, in Launchday's own few lines (verified in tests with the
`standardwebhooks` package, which partners use to check them).

A secret is `whsec_` + base64 of 32 random bytes. A request carries `webhook-id`,
`webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: `v1,` +
base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}" keyed with the secret's bytes, one
per live secret, space-separated (two during a rotation).
"""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(*, keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: one `v1,<base64>` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys
    )
