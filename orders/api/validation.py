"""The shape of the partner API's input, checked before any service is called.

Only types, lengths and choices: whether the launch, SKU, store and customer exist is
the admission rules' business. One table of field limits (taken from the models that
hold the values) serves this validator and the OpenAPI schema (serializers.py).
"""

import re
from typing import Any

from customers.models import Customer
from inventory.models import SKU, Launch
from orders.codes import ErrorCode
from orders.models import Order
from orders.services.admission import AdmissionRefused, OrderRequest
from stores.models import Store

ORDER_FIELD_LIMITS: dict[str, int] = {
    "launch": Launch._meta.get_field("slug").max_length or 64,
    "customer": Customer._meta.get_field("account_number").max_length or 16,
    "sku": SKU._meta.get_field("code").max_length or 32,
    "store": Store._meta.get_field("code").max_length or 16,
    # The customer's postcode as typed: the stored one plus a space or two.
    "postcode": (Customer._meta.get_field("postcode").max_length or 10) + 2,
}
FULFILMENTS: tuple[str, ...] = (Order.Fulfilment.DELIVERY.value, Order.Fulfilment.COLLECT.value)
IDEMPOTENCY_KEY_MAX = Order._meta.get_field("idempotency_key").max_length or 255

_LAUNCH, _CUSTOMER, _SKU, _STORE, _POSTCODE = (
    ORDER_FIELD_LIMITS[k] for k in ("launch", "customer", "sku", "store", "postcode")
)
# Slugs, account numbers, SKU and store codes are all letters, digits, ".", "_" and "-":
# anything else (NUL, spaces, quotes, slashes, other scripts) cannot name one of ours.
CODE_ALPHABET = re.compile(r"[A-Za-z0-9._-]+")
_code = CODE_ALPHABET.fullmatch
CODE_MESSAGE = "Must contain only letters, digits, '.', '_' and '-'."
# A postcode is letters and digits, spaced as the customer likes ("SW1A 1AA", "sw1a1aa").
POSTCODE_ALPHABET = re.compile(r" *[A-Za-z0-9][A-Za-z0-9 ]*")
_postcode = POSTCODE_ALPHABET.fullmatch
POSTCODE_MESSAGE = "Must be the customer's postcode: letters, digits and spaces."


def order_request_validate(data: dict[str, Any]) -> tuple[OrderRequest | None, dict[str, list[str]]]:
    """Check the shape of one order request body; (request, {}) or (None, field errors).

    Codes must be of CODE_ALPHABET (no NUL: PostgreSQL refuses it in text, and it would
    otherwise surface as a server error; nothing else can name a launch, SKU or store).
    """
    launch, customer, sku = data.get("launch"), data.get("customer"), data.get("sku")
    fulfilment, store, postcode = data.get("fulfilment"), data.get("store"), data.get("postcode")
    # The common case in one expression (a bulk validates a thousand of these); anything
    # unusual takes the long way below, which names each bad field.
    if (
        type(launch) is str
        and type(customer) is str
        and type(sku) is str
        and type(postcode) is str
        and 0 < len(launch) <= _LAUNCH
        and 0 < len(customer) <= _CUSTOMER
        and 0 < len(sku) <= _SKU
        and 0 < len(postcode) <= _POSTCODE
        and _postcode(postcode)
        and _code(launch)
        and _code(customer)
        and _code(sku)
    ):
        if fulfilment == "delivery" and (
            store is None or (type(store) is str and 0 < len(store) <= _STORE and _code(store))
        ):
            return OrderRequest(
                launch=launch,
                customer=customer,
                sku=sku,
                fulfilment=fulfilment,
                store=None,
                postcode=postcode,
            ), {}
        if fulfilment == "collect" and type(store) is str and 0 < len(store) <= _STORE and _code(store):
            return OrderRequest(
                launch=launch,
                customer=customer,
                sku=sku,
                fulfilment=fulfilment,
                store=store,
                postcode=postcode,
            ), {}
    errors: dict[str, list[str]] = {}
    values: dict[str, str | None] = {}
    for name in ("launch", "customer", "sku", "fulfilment", "store", "postcode"):
        value = data.get(name)
        if value is None:
            if name != "store":
                errors[name] = ["This field is required."]
            values[name] = None
            continue
        if not isinstance(value, str):
            errors[name] = ["Must be a string."]
            continue
        limit = ORDER_FIELD_LIMITS.get(name, 16)
        if not 1 <= len(value) <= limit:
            errors[name] = [f"Must be 1 to {limit} characters."]
        elif name == "postcode":
            if not _postcode(value):
                errors[name] = [POSTCODE_MESSAGE]
        elif name != "fulfilment" and not _code(value):
            errors[name] = [CODE_MESSAGE]
        values[name] = value
    if "fulfilment" not in errors and values["fulfilment"] not in FULFILMENTS:
        errors["fulfilment"] = ['Choose "delivery" or "collect".']
    if not errors and values["fulfilment"] == Order.Fulfilment.COLLECT and not values["store"]:
        errors["store"] = ["Name the store to collect from."]
    if errors:
        return None, errors
    return (
        OrderRequest(
            launch=values["launch"] or "",
            customer=values["customer"] or "",
            sku=values["sku"] or "",
            fulfilment=values["fulfilment"] or "",
            store=values["store"] if values["fulfilment"] == Order.Fulfilment.COLLECT else None,
            postcode=values["postcode"] or "",
        ),
        {},
    )


def bulk_items_validate(
    items: list[Any],
) -> tuple[list[tuple[int, OrderRequest]], dict[int, AdmissionRefused]]:
    """Each item of a bulk request: (index, request) for the well-formed, a refusal for the rest."""
    valid: list[tuple[int, OrderRequest]] = []
    refused: dict[int, AdmissionRefused] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            refused[index] = AdmissionRefused(ErrorCode.INVALID_JSON, "Each order must be a JSON object.")
            continue
        request, errors = order_request_validate(item)
        if request is None:
            refused[index] = AdmissionRefused(
                ErrorCode.VALIDATION_ERROR, "Some fields are missing or invalid.", details=errors
            )
        else:
            valid.append((index, request))
    return valid, refused


def idempotency_key_valid(value: str) -> bool:
    """1 to 255 printable ASCII characters."""
    return 1 <= len(value) <= IDEMPOTENCY_KEY_MAX and all(" " <= ch <= "~" for ch in value)
