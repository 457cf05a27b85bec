"""Every value a request brings in, checked before it reaches a lookup.

PostgreSQL refuses NUL in text, an over-long or odd value has no business in a query, and
a lookup that fails that way is a 500. So input is checked in one place, three ways:

- **Path values** match a converter of this module (registered below, used by every
  URL pattern that takes a value): store codes, delivery references, account numbers,
  slugs, order references and signed tokens each have a safe alphabet and a length. A
  value that does not match never reaches a view: the resolver answers 404 (the JSON
  envelope under /api/).
- **Query and form values** a view reads by hand go through `clean_text` (no control
  characters, no lone surrogates, bounded length) or match one of the shapes below;
  Django's forms already refuse NUL in their CharFields.
- **InputGuard**, a middleware, refuses any request whose path (404), query string or
  form fields (400) hold NUL or a lone surrogate, before any view runs: the backstop for
  views nobody thought of (Django's admin included).

The shapes are also what partners and suppliers may send as codes and references
(inventory.manifests checks a manifest's reference against DELIVERY_REFERENCE); they
live in config/shapes.py, which cores may import.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.urls import register_converter

from config.shapes import (
    ACCOUNT_NUMBER,
    DELIVERY_REFERENCE,
    ORDER_REFERENCE,
    SIGNED_TOKEN,
    SLUG,
    STORE_CODE,
)
from orders.codes import ErrorCode, error_body

SHAPES: dict[str, str] = {
    "store": STORE_CODE,
    "delivery": DELIVERY_REFERENCE,
    "account": ACCOUNT_NUMBER,
    "slug64": SLUG,
    "reference": ORDER_REFERENCE,
    "token": SIGNED_TOKEN,
}


def _converter(name: str, shape: str) -> type:
    class Converter:
        regex = shape

        def to_python(self, value: str) -> str:
            return value

        def to_url(self, value: str) -> str:
            return value

    Converter.__name__ = f"{name.title()}Converter"
    return Converter


for _name, _shape in SHAPES.items():
    register_converter(_converter(_name, _shape), _name)


def matches(shape: str, value: object) -> bool:
    """Whether a value is a string of this shape (one of the constants above)."""
    return isinstance(value, str) and re.fullmatch(shape, value) is not None


def text_problem(value: str, *, max_length: int, multiline: bool = False) -> str | None:
    """Why this text cannot be stored or looked up, or None when it can.

    Refused: NUL and other control characters (tab, and newlines where multiline, are
    fine), lone surrogates (not text: they cannot be encoded), and more than max_length
    characters.
    """
    if len(value) > max_length:
        return f"Use at most {max_length:,} characters."
    allowed = "\t\r\n" if multiline else "\t"
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed:
            return "Use letters, digits and punctuation only."
    return None


def clean_text(value: object, *, max_length: int, multiline: bool = False) -> str | None:
    """A query or form value fit for a lookup (stripped), or None when it is not text of
    at most max_length characters without control characters or lone surrogates."""
    if not isinstance(value, str):
        return None
    if text_problem(value, max_length=max_length, multiline=multiline) is not None:
        return None
    return value.strip()


def _bad(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


def _bad_values(items: Iterable[tuple[str, list[str]]]) -> bool:
    return any(_bad(key) or any(_bad(v) for v in values) for key, values in items)


def request_has_bad_input(request: HttpRequest) -> bool:
    """NUL or a lone surrogate in the query string or a form field."""
    if _bad_values(request.GET.lists()):
        return True
    content_type = request.content_type or ""
    if request.method == "POST" and content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        try:
            return _bad_values(request.POST.lists())
        except Exception:  # a malformed body: the view or CSRF check says so in its own way
            return False
    return False


class InputGuard:
    """Refuse, before any view runs, a request carrying NUL or a lone surrogate in its
    path (404) or its query string or form fields (400); the JSON envelope under /api/."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _bad(request.path_info):
            # An address holding NUL names nothing: the 404 the converters give elsewhere.
            raise Http404("No such address.")
        if request_has_bad_input(request):
            return bad_input_response(request)
        return self.get_response(request)


def bad_input_response(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        code = ErrorCode.VALIDATION_ERROR
        return JsonResponse(
            error_body(
                code, "The address or a field holds characters that are not allowed (NUL, lone surrogates)."
            ),
            status=code.status,
        )
    from django.template import loader

    try:
        body = loader.render_to_string("400.html", request=request)
    except Exception:  # the page needs nothing that can fail, but a 400 must never become a 500
        body = "<h1>Bad request</h1>"
    return HttpResponseBadRequest(body)
