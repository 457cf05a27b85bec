"""The shapes of the codes and references that travel in URLs and from partners.

Plain regular expressions (no anchors), importable by any layer: config.inputs turns them
into URL converters, inventory.manifests holds a supplier's delivery reference to one.
"""

STORE_CODE = r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}"
DELIVERY_REFERENCE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
ACCOUNT_NUMBER = r"[A-Za-z0-9]{1,16}"
SLUG = r"[A-Za-z0-9_-]{1,64}"
SKU_CODE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}"
# Order references are capitals and digits (orders.services.admission makes them).
ORDER_REFERENCE = r"[A-Z0-9]{6,16}"
# django.core.signing tokens: URL-safe base64 pieces joined by ":".
SIGNED_TOKEN = r"[A-Za-z0-9_=:-]{1,300}"  # noqa: S105 - a shape, not a secret
