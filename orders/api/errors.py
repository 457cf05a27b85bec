"""The error envelope of API.md, for every answer of the partner API that is not a success.

`{"error": {"code": "<snake_case>", "message": "<sentence>", "details": {...}}}`. One
exception handler (set on the partner API's base view) turns every exception into it:
DRF's own (parse errors, authentication, throttles, 404, 405 ...), the admission
service's AdmissionRefused, and anything unexpected (a logged 500, never an HTML page).
The catch-all view and `server_error` give the same envelope for URLs under /api/ that no
API view matched, and for 500s raised outside DRF.
"""

import logging
import math

import orjson
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from orders.codes import ErrorCode, error_body
from orders.services.admission import AdmissionRefused

logger = logging.getLogger(__name__)

# DRF's own codes, renamed to API.md's.
_DRF_CODES: dict[str, ErrorCode] = {
    "parse_error": ErrorCode.INVALID_JSON,
    "invalid": ErrorCode.VALIDATION_ERROR,
    "authentication_failed": ErrorCode.NOT_AUTHENTICATED,
    "not_authenticated": ErrorCode.NOT_AUTHENTICATED,
    "permission_denied": ErrorCode.PERMISSION_DENIED,
    "not_found": ErrorCode.NOT_FOUND,
    "method_not_allowed": ErrorCode.METHOD_NOT_ALLOWED,
    "not_acceptable": ErrorCode.NOT_ACCEPTABLE,
    "unsupported_media_type": ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    "throttled": ErrorCode.THROTTLED,
}

MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "The body is not valid JSON.",
    ErrorCode.VALIDATION_ERROR: "Some fields are missing or invalid.",
    ErrorCode.NOT_AUTHENTICATED: "Send a valid key in the header 'Authorization: Api-Key <key>'.",
    ErrorCode.PERMISSION_DENIED: "This key may not do this.",
    ErrorCode.NOT_FOUND: "Not found.",
    ErrorCode.THROTTLED: "This key has sent too many requests; retry after the Retry-After seconds.",
    ErrorCode.OVERLOADED: "The server is busy; nothing was written. Retry after the Retry-After seconds.",
}


class ApiError(exceptions.APIException):
    """An API.md error raised by a view: code, sentence, optional details."""

    def __init__(self, code: ErrorCode, message: str, *, details: dict | None = None):
        super().__init__(message, code)
        self.code = code
        self.message = message
        self.details = details or {}
        self.status_code = code.status


class PayloadTooLarge(ApiError):
    def __init__(self, message: str = "The body is larger than this API accepts."):
        super().__init__(ErrorCode.PAYLOAD_TOO_LARGE, message)


class InvalidJSON(ApiError):
    def __init__(self, message: str = "The body is not valid JSON.", *, details: dict | None = None):
        super().__init__(ErrorCode.INVALID_JSON, message, details=details)


def _messages(detail) -> list[str]:
    """Every message in a (possibly nested) DRF error detail, as a flat list of strings."""
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _messages(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _messages(value)]
    return [str(detail)]


def field_errors(detail) -> dict[str, list[str]]:
    """A DRF validation detail as API.md's details: field name -> list of messages."""
    if isinstance(detail, dict):
        return {str(field): _messages(value) for field, value in detail.items()}
    return {"non_field_errors": _messages(detail)}


def _describe(exc: exceptions.APIException) -> tuple[str, str, dict]:
    if isinstance(exc, ApiError):
        return exc.code, exc.message, exc.details
    if isinstance(exc, exceptions.ValidationError):
        code = ErrorCode.VALIDATION_ERROR
        return code, MESSAGES[code], field_errors(exc.detail)
    codes = exc.get_codes()
    raw_code = codes if isinstance(codes, str) else exc.default_code
    code = ErrorCode.INVALID_JSON if isinstance(exc, exceptions.ParseError) else _DRF_CODES.get(raw_code)
    if code is None:  # a DRF code API.md does not list: passed on as DRF names it
        return raw_code, str(exc.detail) if isinstance(exc.detail, str) else "The request failed.", {}
    message = str(exc.detail) if isinstance(exc.detail, str) else MESSAGES.get(code, "The request failed.")
    if code in (ErrorCode.INVALID_JSON, ErrorCode.NOT_AUTHENTICATED):
        message = MESSAGES[code]
    return code, message, {}


def api_exception_handler(exc, context) -> Response:
    """DRF's EXCEPTION_HANDLER for the partner API: always an envelope, never None."""
    if isinstance(exc, AdmissionRefused):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.code.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if not isinstance(exc, exceptions.APIException):
        set_rollback()
        request = context.get("request")
        logger.exception("Unhandled error in the partner API at %s", getattr(request, "path", "?"))
        return Response(error_body(ErrorCode.SERVER_ERROR, "Something went wrong on our side."), status=500)

    set_rollback()
    code, message, details = _describe(exc)
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    status = exc.status_code
    if isinstance(exc, exceptions.Throttled):
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait or 1)))
    elif code == ErrorCode.OVERLOADED:
        headers["Retry-After"] = str(settings.ADMISSION_RETRY_AFTER_SECONDS)
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        status = 401
    return Response(error_body(code, message, details), status=status, headers=headers)


def envelope_response(code: str, message: str, *, status: int, details: dict | None = None) -> HttpResponse:
    """A plain Django response carrying the envelope (for views outside DRF)."""
    return HttpResponse(
        orjson.dumps(error_body(code, message, details)), status=status, content_type="application/json"
    )


@csrf_exempt
def api_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Catch-all for URLs under /api/ that no view matched.

    A missing or extra trailing slash is forgiven (a POST cannot follow a redirect
    safely): the request is served by the view the other spelling names.
    """
    path = request.path_info
    other = path[:-1] if path.endswith("/") else path + "/"
    try:
        match = resolve(other)
    except Resolver404:
        match = None
    if match is not None and match.func is not api_not_found:
        return match.func(request, *match.args, **match.kwargs)
    return envelope_response(ErrorCode.NOT_FOUND, "There is nothing at this address.", status=404)


def server_error(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """handler500 for the project: the envelope under /api/, templates/500.html elsewhere."""
    if request.path_info.startswith("/api/"):
        return envelope_response(ErrorCode.SERVER_ERROR, "Something went wrong on our side.", status=500)
    from django.views.defaults import server_error as django_server_error

    return django_server_error(request, *args, **kwargs)


def page_not_found(request: HttpRequest, exception=None, *args, **kwargs) -> HttpResponse:
    """handler404 for the project: the envelope under /api/, templates/404.html elsewhere."""
    if request.path_info.startswith("/api/"):
        return envelope_response(ErrorCode.NOT_FOUND, "There is nothing at this address.", status=404)
    from django.views.defaults import page_not_found as django_page_not_found

    return django_page_not_found(request, exception, *args, **kwargs)


def permission_denied(request: HttpRequest, exception=None, *args, **kwargs) -> HttpResponse:
    """handler403 for the project: the envelope under /api/, the app's 403 page elsewhere."""
    if request.path_info.startswith("/api/"):
        return envelope_response(
            ErrorCode.PERMISSION_DENIED, MESSAGES[ErrorCode.PERMISSION_DENIED], status=403
        )
    from django.views.defaults import permission_denied as django_permission_denied

    return django_permission_denied(request, exception, *args, **kwargs)
