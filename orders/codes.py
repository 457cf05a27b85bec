"""The error codes of the partner API (API.md's table), each with its HTTP status.

One enum for every layer: admission refuses with these codes, the API's envelope
carries them, the schema lists them, and pages translate them into words.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    VALIDATION_ERROR = "validation_error"
    NOT_AUTHENTICATED = "not_authenticated"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    ALREADY_ORDERED = "already_ordered"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    LAUNCH_NOT_OPEN = "launch_not_open"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    NOT_ELIGIBLE = "not_eligible"
    UNKNOWN_SKU = "unknown_sku"
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"

    @property
    def status(self) -> int:
        return _STATUS[self]


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """API.md's envelope: the one place its shape is written (orders.api.errors, the ASGI
    front and config.inputs all answer with it)."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.NOT_AUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.NOT_ACCEPTABLE: 406,
    ErrorCode.ALREADY_ORDERED: 409,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.LAUNCH_NOT_OPEN: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.NOT_ELIGIBLE: 422,
    ErrorCode.UNKNOWN_SKU: 422,
    ErrorCode.THROTTLED: 429,
    ErrorCode.SERVER_ERROR: 500,
    ErrorCode.OVERLOADED: 503,
}
