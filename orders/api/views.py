"""The partner REST API of API.md: one thin view per operation.

Views authenticate (a partner key, cached), throttle per key, decode the body, and call
the admission services; every error becomes API.md's envelope (orders.api.errors).
"""

import django_filters
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.views import APIView

from config.logcontext import log_context
from config.metrics import order_refused, orders_admitted
from inventory.models import Launch
from inventory.selectors import location_online_pool_id, store_stock_document
from orders.api import serializers as s
from orders.api.auth import HasOrdersScope, PartnerKey, PartnerKeyAuthentication
from orders.api.errors import MESSAGES, ApiError, InvalidJSON, PayloadTooLarge, api_exception_handler
from orders.api.rendering import JsonOnly, OrjsonParser, OrjsonRenderer, json_body, order_json
from orders.api.throttles import PartnerKeyThrottle, proof_failures_add, proof_failures_wait
from orders.api.validation import bulk_items_validate, idempotency_key_valid, order_request_validate
from orders.codes import ErrorCode
from orders.models import Order
from orders.selectors.availability import pool_availability
from orders.selectors.orders import OrderSummary, order_summary
from orders.services.admission import AdmissionRefused, OrderRequest, order_admit
from orders.services.bulk import MAX_BULK_ITEMS, BulkOutcome, orders_admit_bulk
from orders.services.group_commit import BatchFailed, grouped_admission_enabled, order_admit_grouped
from stores.models import Store


def _errors(*codes: ErrorCode) -> dict:
    """The error answers of an operation, one per status, each naming every code it may carry."""
    by_status: dict[int, list[ErrorCode]] = {}
    # Every operation may meet these: a query holding NUL (validation_error), no or a bad key,
    # a key that may not, the key's rate limit.
    always = (
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.THROTTLED,
    )
    for code in (*codes, *always):
        if code not in by_status.setdefault(code.status, []):
            by_status[code.status].append(code)
    return {
        status: OpenApiResponse(
            s.ErrorSerializer,
            description="The error envelope; `error.code` is "
            + " or ".join(f"`{c}`" for c in group)
            + ". "
            + " ".join(CODE_MEANINGS[c] for c in group),
        )
        for status, group in by_status.items()
    }


CODE_MEANINGS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "invalid_json: the body is not JSON, or not an object where one is expected.",
    ErrorCode.VALIDATION_ERROR: (
        "validation_error: a field, header or query parameter is missing, of the wrong type or out "
        "of range; details name each."
    ),
    ErrorCode.NOT_AUTHENTICATED: "not_authenticated: no key, or an unknown or revoked key.",
    ErrorCode.PERMISSION_DENIED: "permission_denied: the key's partner may not see or do this.",
    ErrorCode.NOT_FOUND: "not_found: no such launch, order or store for this partner.",
    ErrorCode.ALREADY_ORDERED: (
        "already_ordered: this customer already has an order in this launch; details.reference names "
        "it only when this partner placed it."
    ),
    ErrorCode.IDEMPOTENCY_CONFLICT: "idempotency_conflict: this Idempotency-Key was used with a different body.",
    ErrorCode.LAUNCH_NOT_OPEN: "launch_not_open: the launch window is not open.",
    ErrorCode.PAYLOAD_TOO_LARGE: "payload_too_large: over 1,000 orders, or a body over the size limit.",
    ErrorCode.NOT_ELIGIBLE: (
        "not_eligible: the customer is unknown, not registered for this launch's upgrade, cannot "
        "upgrade, or the postcode does not match (one answer for all)."
    ),
    ErrorCode.UNKNOWN_SKU: "unknown_sku: the SKU is not part of this launch.",
    ErrorCode.THROTTLED: (
        "throttled: this key's rate limit, or too many wrong postcodes from it this hour; retry after "
        "the Retry-After seconds."
    ),
    ErrorCode.OVERLOADED: "overloaded: the server sheds load; nothing was written; retry after Retry-After.",
}


class PartnerAPIView(APIView):
    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [HasOrdersScope]
    throttle_classes = [PartnerKeyThrottle]
    renderer_classes = [OrjsonRenderer]
    parser_classes = [OrjsonParser]
    content_negotiation_class = JsonOnly

    def get_exception_handler(self):
        return api_exception_handler

    def proof_failures_check(self) -> None:
        """A key that sent too many wrong postcodes this window places no order until the next."""
        wait = proof_failures_wait(key_id=self.caller.key_id)
        if wait is not None:
            self.throttled(self.request, wait)

    @property
    def caller(self) -> PartnerKey:
        return self.request.auth


def refusal_counted(response) -> None:
    """Count a refused order request by its envelope's code (for a 503, why it shed)."""
    error = response.data.get("error") if isinstance(response.data, dict) else None
    if isinstance(error, dict):
        reason = (
            (error.get("details") or {}).get("reason") if error.get("code") == ErrorCode.OVERLOADED else None
        )
        order_refused(reason or str(error.get("code")))


class LaunchListView(PartnerAPIView):
    @extend_schema(operation_id="launches_list", responses={200: s.LaunchListSerializer, **_errors()})
    def get(self, request):
        now = timezone.now()
        launches = Launch.objects.order_by("opens_at", "slug").values("slug", "name", "opens_at", "closes_at")
        return Response(
            {"results": [{**row, "is_open": row["opens_at"] <= now < row["closes_at"]} for row in launches]}
        )


class LaunchAvailabilityView(PartnerAPIView):
    @extend_schema(
        operation_id="launches_availability",
        responses={200: s.AvailabilitySerializer, **_errors(ErrorCode.NOT_FOUND)},
    )
    def get(self, request, slug: str):
        launch = Launch.objects.filter(slug=slug).first()
        if launch is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"There is no launch called {slug!r}.")
        pools = pool_availability(
            launch=launch, pool_id=location_online_pool_id(), skus=list(launch.skus.order_by("code"))
        )
        return Response(
            {
                "launch": launch.slug,
                "skus": [
                    {
                        "sku": pool.sku.code,
                        "name": pool.sku.name,
                        "online_available": pool.units_left,
                        "waiting": pool.waiting,
                    }
                    for pool in pools
                ],
            }
        )


class OrderFilter(django_filters.FilterSet):
    launch = django_filters.CharFilter(field_name="launch__slug", max_length=64)
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)

    class Meta:
        model = Order
        fields = ["launch", "status"]


class OrderCursorPagination(pagination.CursorPagination):
    """Cursor pages on the order sequence (unique, indexed, never reordered), with a count."""

    ordering = "sequence"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        """API_PAGE_SIZE, or page_size when given: 1 to 500, anything else refused (DRF
        would quietly fall back to the default for 0, -1, 501 or "abc")."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return settings.API_PAGE_SIZE
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise exceptions.ValidationError(
                {"page_size": [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": ["Invalid cursor."]}) from None
        # DRF would hand a forged position straight to the query.
        position = cursor.position if cursor is not None else None
        if position is not None and (
            not (position.isascii() and position.isdigit()) or int(position) >= 2**63
        ):
            raise exceptions.ValidationError({"cursor": ["Invalid cursor."]})
        return cursor

    def paginate_queryset(self, queryset, request, view=None):
        self.count = queryset.count()
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        return Response(
            {
                "count": self.count,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )


def _idempotency_key(request) -> str | None:
    value = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if value is None:
        return None
    if not idempotency_key_valid(value):
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            "Some fields are missing or invalid.",
            details={"Idempotency-Key": ["Must be 1 to 255 printable ASCII characters."]},
        )
    return value


class OrderCollectionView(PartnerAPIView):
    @extend_schema(
        operation_id="orders_list",
        parameters=[
            OpenApiParameter("launch", str, description="launch slug"),
            OpenApiParameter("status", str, enum=Order.Status.values),
            OpenApiParameter("cursor", str, description="from next or previous"),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": 500},
                description="1 to 500 (default 100)",
            ),
        ],
        responses={200: s.OrderPageSerializer, **_errors(ErrorCode.VALIDATION_ERROR)},
    )
    def get(self, request):
        queryset = Order.objects.filter(partner_id=self.caller.partner_id).select_related(
            "launch", "customer", "sku", "store"
        )
        if request.query_params.get("status", None) == "":
            raise exceptions.ValidationError(
                {"status": ["Choose one of " + ", ".join(Order.Status.values) + "."]}
            )
        filtered = OrderFilter(request.query_params, queryset=queryset)
        if not filtered.is_valid():
            raise exceptions.ValidationError(filtered.errors)
        paginator = OrderCursorPagination()
        page = paginator.paginate_queryset(filtered.qs, request, view=self)
        return paginator.get_paginated_response([order_json(order_summary(o)) for o in page])

    @extend_schema(
        operation_id="orders_create",
        request=s.OrderRequestSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
                OpenApiParameter.HEADER,
                description="1 to 255 printable characters; a replay returns the same answer",
            )
        ],
        responses={
            202: s.OrderSerializer,
            **_errors(
                ErrorCode.INVALID_JSON,
                ErrorCode.VALIDATION_ERROR,
                ErrorCode.NOT_FOUND,
                ErrorCode.ALREADY_ORDERED,
                ErrorCode.IDEMPOTENCY_CONFLICT,
                ErrorCode.LAUNCH_NOT_OPEN,
                ErrorCode.PAYLOAD_TOO_LARGE,
                ErrorCode.NOT_ELIGIBLE,
                ErrorCode.UNKNOWN_SKU,
                ErrorCode.OVERLOADED,
            ),
        },
    )
    def post(self, request):
        self.proof_failures_check()
        body = json_body(request)
        if not isinstance(body, dict):
            raise InvalidJSON("The body must be a JSON object.")
        key = _idempotency_key(request)
        order_request, errors = order_request_validate(body)
        if order_request is None:
            raise ApiError(ErrorCode.VALIDATION_ERROR, "Some fields are missing or invalid.", details=errors)
        log_context(launch=order_request.launch, partner=self.caller.partner_id, store=order_request.store)
        try:
            summary, self.replayed = _admit_one(order_request, caller=self.caller, idempotency_key=key)
        except AdmissionRefused as refused:
            if refused.failed_proof:
                proof_failures_add(key_id=self.caller.key_id)
            raise
        except (BatchFailed, DatabaseError):
            # The database is away: nothing of this request was committed.
            raise _database_unavailable() from None
        log_context(order=summary.reference)
        return Response(order_json(summary), status=202)

    def finalize_response(self, request, response, *args, **kwargs):
        if request.method == "POST":
            if response.status_code == 202:
                if not getattr(self, "replayed", True):
                    orders_admitted(path="single")
            else:
                refusal_counted(response)
        return super().finalize_response(request, response, *args, **kwargs)


def _database_unavailable(
    message: str = MESSAGES[ErrorCode.OVERLOADED],
) -> ApiError:
    return ApiError(ErrorCode.OVERLOADED, message, details={"reason": "database_unavailable"})


def _admit_one(
    order_request: OrderRequest, *, caller: PartnerKey, idempotency_key: str | None
) -> tuple[OrderSummary, bool]:
    """One order, and whether it was a replay: by group commit (the default), or one
    INSERT of its own (the path before it, kept behind ADMISSION_GROUP_COMMIT=0 so the
    bench can compare)."""
    arguments = {
        "launch": order_request.launch,
        "customer": order_request.customer,
        "sku": order_request.sku,
        "fulfilment": order_request.fulfilment,
        "store": order_request.store,
        "postcode": order_request.postcode,
        "channel": Order.Channel.PARTNER,
        "partner_id": caller.partner_id,
        "idempotency_key": idempotency_key,
        "idempotency_scope": caller.idempotency_scope,
    }
    if grouped_admission_enabled():
        grouped = order_admit_grouped(**arguments)
        return grouped.order, grouped.replayed
    admission = order_admit(**arguments)
    order = admission.order
    if admission.replayed:  # loaded with its relations: answer its current state
        return order_summary(order), True
    # Fresh: the request's codes are the row's, no query needed.
    summary = OrderSummary(
        reference=order.reference,
        launch=order_request.launch,
        customer=order_request.customer,
        sku=order_request.sku,
        fulfilment=order.fulfilment,
        store=order_request.store,
        channel=order.channel,
        status=order.status,
        queue_position=admission.position,
        created_at=order.created_at,
    )
    return summary, False


class OrderBulkView(PartnerAPIView):
    @extend_schema(
        operation_id="orders_bulk",
        request={"application/json": s.BULK_REQUEST_SCHEMA},
        responses={
            200: s.BulkResponseSerializer,
            **_errors(
                ErrorCode.INVALID_JSON,
                ErrorCode.VALIDATION_ERROR,
                ErrorCode.PAYLOAD_TOO_LARGE,
                ErrorCode.OVERLOADED,
            ),
        },
    )
    def post(self, request):
        self.proof_failures_check()
        body = json_body(request)
        if isinstance(body, dict):
            items = body.get("orders")
            if not isinstance(items, list):
                raise ApiError(
                    ErrorCode.VALIDATION_ERROR,
                    "Some fields are missing or invalid.",
                    details={"orders": ["Send a list of 1 to 1,000 orders."]},
                )
        elif isinstance(body, list):
            items = body
        else:
            raise InvalidJSON('The body must be a JSON object {"orders": [...]}.')
        if len(items) > MAX_BULK_ITEMS:
            raise PayloadTooLarge(
                f"A bulk request takes at most {MAX_BULK_ITEMS:,} orders; this one has {len(items):,}."
            )
        if not items:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                "Some fields are missing or invalid.",
                details={"orders": ["Send a list of 1 to 1,000 orders."]},
            )
        valid, refused = bulk_items_validate(items)
        try:
            admitted = orders_admit_bulk(
                requests=[request for _, request in valid],
                channel=Order.Channel.PARTNER,
                partner_id=self.caller.partner_id,
            )
        except DatabaseError:
            # The database is away. One statement writes a bulk of one-order launches, but a
            # launch allowing several orders each is written item by item: some may be in.
            raise _database_unavailable(
                "The database did not answer. Send the bulk again after the Retry-After seconds: "
                "any order of it already written is answered already_ordered then."
            ) from None
        outcomes: dict[int, BulkOutcome] = {
            index: BulkOutcome(index, refusal=r) for index, r in refused.items()
        }
        for (index, _), outcome in zip(valid, admitted, strict=True):
            outcomes[index] = BulkOutcome(index, order=outcome.order, refusal=outcome.refusal)
        proof_failures_add(
            key_id=self.caller.key_id,
            count=sum(1 for o in admitted if o.refusal is not None and o.refusal.failed_proof),
        )
        for outcome in outcomes.values():
            if outcome.refusal is not None:
                order_refused(outcome.refusal.code.value)
        orders_admitted(path="bulk", count=sum(1 for o in outcomes.values() if o.order is not None))
        self.items_counted = True
        return Response({"results": [_bulk_result(outcomes[index]) for index in range(len(items))]})

    def finalize_response(self, request, response, *args, **kwargs):
        if request.method == "POST" and not getattr(self, "items_counted", False):
            refusal_counted(response)  # the whole bulk refused (its body, the throttle...)
        return super().finalize_response(request, response, *args, **kwargs)


class OrderDetailView(PartnerAPIView):
    @extend_schema(
        operation_id="orders_retrieve", responses={200: s.OrderSerializer, **_errors(ErrorCode.NOT_FOUND)}
    )
    def get(self, request, reference: str):
        order = (
            Order.objects.filter(reference=reference, partner_id=self.caller.partner_id)
            .select_related("launch", "customer", "sku", "store")
            .first()
        )
        if order is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"There is no order {reference!r} for this partner.")
        return Response(order_json(order_summary(order)))


class StoreListView(PartnerAPIView):
    @extend_schema(operation_id="stores_list", responses={200: s.StoreListSerializer, **_errors()})
    def get(self, request):
        stores = Store.objects.filter(partner_id=self.caller.partner_id, is_active=True).order_by("code")
        return Response({"results": list(stores.values("code", "name", "opens_at_launch"))})


class StoreStockView(PartnerAPIView):
    @extend_schema(
        operation_id="stores_stock", responses={200: s.StoreStockSerializer, **_errors(ErrorCode.NOT_FOUND)}
    )
    def get(self, request, code: str):
        store = Store.objects.filter(code=code, partner_id=self.caller.partner_id, is_active=True).first()
        if store is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"There is no store {code!r} for this partner.")
        return Response(
            {
                "store": store.code,
                "stock": store_stock_document(store=store),
            }
        )


def _bulk_result(outcome: BulkOutcome) -> dict:
    if outcome.order is not None:
        return {"index": outcome.index, "status": 202, "order": order_json(outcome.order)}
    refusal = outcome.refusal
    assert refusal is not None
    return {
        "index": outcome.index,
        "status": refusal.code.status,
        "error": {"code": refusal.code, "message": refusal.message, "details": refusal.details},
    }
