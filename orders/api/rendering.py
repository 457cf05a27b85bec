"""JSON in and out with orjson, and the Order representation of API.md."""

from decimal import Decimal

import orjson
from django.core.exceptions import RequestDataTooBig
from django.utils.functional import Promise
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from orders.api.errors import InvalidJSON, PayloadTooLarge
from orders.selectors.orders import OrderSummary, order_document


def orjson_default(value):
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=orjson_default)


class OrjsonParser(BaseParser):
    """Documents the request media type; views read bodies with json_body() instead."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return orjson.loads(stream.read())
        except orjson.JSONDecodeError as error:
            raise InvalidJSON(details={"reason": str(error)}) from None


class JsonOnly(BaseContentNegotiation):
    """The API speaks JSON whatever Accept and Content-Type say: no 406 or 415 surprises."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def json_body(request):
    """The request body decoded, after checking its declared size; never a partial parse.

    Django's HttpRequest.body refuses a Content-Length over DATA_UPLOAD_MAX_MEMORY_SIZE
    before reading a byte of it. Any body that is not JSON (empty, not UTF-8, too deep)
    is invalid_json.
    """
    try:
        raw = request._request.body
    except RequestDataTooBig:
        raise PayloadTooLarge() from None
    except ValueError:  # a Content-Length that is not a number
        raise InvalidJSON("The Content-Length header is not a number.") from None
    return json_parse(raw)


def json_parse(raw: bytes) -> object:
    """A request body as JSON, or InvalidJSON: the one parser of the DRF views and the front.

    orjson refuses, rather than crashing on, everything the issue's attacker tried: a lone
    surrogate (\\udc00), nesting over 1,024 deep, a number too big for a double (5,000
    digits), invalid UTF-8, a byte-order mark, NaN. A NUL inside a string parses; every
    field that reaches a lookup is checked by orders.api.validation.
    """
    if not raw:
        raise InvalidJSON("The body is empty; send a JSON object.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidJSON(details={"reason": str(error)}) from None


def order_json(order: OrderSummary) -> dict:
    """API.md's Order (orders.selectors.orders.order_document, shared with webhooks)."""
    return order_document(order)
