"""Reading a partner's key from `Authorization: Api-Key <key>`: one parser for every API.

The orders API (orders.api.auth) and the supplier API (inventory.api) both call it, so
the keyword is case-insensitive everywhere and a value that cannot be a key (the wrong
shape, NUL, 5,000 characters) is refused here, before any lookup.
"""

import re

KEYWORD = "api-key"
# djangorestframework-api-key makes "<prefix>.<secret>": 8 and 32 letters or digits.
KEY_SHAPE = re.compile(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{16,64}")


def key_from_header(value: str) -> str | None:
    """The key in an Authorization header value, or None when there is none of a key's shape."""
    keyword, found, key = value.strip().partition(" ")
    if not found or keyword.lower() != KEYWORD:
        return None
    key = key.strip()
    return key if KEY_SHAPE.fullmatch(key) else None
