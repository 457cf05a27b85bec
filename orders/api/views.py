"""The partner REST API of API.md: one thin view per operation.

Views authenticate (a partner key, cached), throttle per key, decode the body, and call
the admission services; every error becomes API.md's envelope (orders.api.errors).
"""

import django_filters
from django.db.models import Count, F
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.models import Launch, Location, Stock
from inventory.selectors import location_online_pool
from orders.api import serializers as s
from orders.api.auth import HasOrdersScope, PartnerKey, PartnerKeyAuthentication
from orders.api.errors import STATUS_FOR_CODE, ApiError, InvalidJSON, PayloadTooLarge, api_exception_handler
from orders.api.rendering import JsonOnly, OrjsonParser, OrjsonRenderer, json_body, order_json
from orders.api.throttles import PartnerKeyThrottle
from orders.models import Order, PoolState
from orders.services.admission import order_admit
from orders.services.bulk import MAX_BULK_ITEMS, order_request_validate, orders_admit_bulk
from orders.services.positions import order_queue_position
from stores.models import Store

_WAITING = (Order.Status.QUEUED, Order.Status.WAITLISTED)


def _errors(*codes: str) -> dict:
    responses = {STATUS_FOR_CODE[c]: OpenApiResponse(s.ErrorSerializer, description=c) for c in codes}
    for code in ("not_authenticated", "permission_denied", "throttled"):
        responses.setdefault(STATUS_FOR_CODE[code], OpenApiResponse(s.ErrorSerializer, description=code))
    return responses


class PartnerAPIView(APIView):
    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [HasOrdersScope]
    throttle_classes = [PartnerKeyThrottle]
    renderer_classes = [OrjsonRenderer]
    parser_classes = [OrjsonParser]
    content_negotiation_class = JsonOnly

    def get_exception_handler(self):
        return api_exception_handler

    @property
    def caller(self) -> PartnerKey:
        return self.request.auth


def _position(order: Order) -> int | None:
    if order.status not in _WAITING:
        return None
    return order_queue_position(order=order).position


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
        responses={200: s.AvailabilitySerializer, **_errors("not_found")},
    )
    def get(self, request, slug: str):
        launch = Launch.objects.filter(slug=slug).first()
        if launch is None:
            raise ApiError("not_found", f"There is no launch called {slug!r}.")
        online = location_online_pool()
        skus = list(launch.skus.order_by("code").values_list("pk", "code", "name"))
        available = dict(
            Stock.objects.filter(location=online, sku__in=[pk for pk, _, _ in skus]).values_list(
                "sku_id", F("on_hand") - F("reserved")
            )
        )
        waiting = dict(PoolState.objects.filter(launch=launch, pool=online).values_list("sku_id", "waiting"))
        # Orders not yet seen by the allocator (it runs every second): a short list, read
        # through the partial index of queued orders.
        queued = (
            Order.objects.filter(launch=launch, status=Order.Status.QUEUED, pool=online)
            .values("sku_id")
            .annotate(n=Count("sequence"))
            .values_list("sku_id", "n")
        )
        for sku_id, n in queued:
            waiting[sku_id] = waiting.get(sku_id, 0) + n
        return Response(
            {
                "launch": launch.slug,
                "skus": [
                    {
                        "sku": code,
                        "name": name,
                        "online_available": max(available.get(pk, 0), 0),
                        "waiting": waiting.get(pk, 0),
                    }
                    for pk, code, name in skus
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
        from django.conf import settings

        self.page_size = settings.API_PAGE_SIZE
        return super().get_page_size(request)

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
    if not 1 <= len(value) <= 255 or not all(" " <= ch <= "~" for ch in value):
        raise ApiError(
            "validation_error",
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
            OpenApiParameter("page_size", int, description="1 to 500 (default 100)"),
        ],
        responses={200: s.OrderPageSerializer, **_errors("validation_error")},
    )
    def get(self, request):
        queryset = Order.objects.filter(partner_id=self.caller.partner_id).select_related(
            "launch", "customer", "sku", "store"
        )
        filtered = OrderFilter(request.query_params, queryset=queryset)
        if not filtered.is_valid():
            raise exceptions.ValidationError(filtered.errors)
        paginator = OrderCursorPagination()
        page = paginator.paginate_queryset(filtered.qs, request, view=self)
        return paginator.get_paginated_response([order_json(o, queue_position=_position(o)) for o in page])

    @extend_schema(
        operation_id="orders_create",
        request=s.OrderRequestSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="1 to 255 printable characters; a replay returns the same answer",
            )
        ],
        responses={
            202: s.OrderSerializer,
            **_errors(
                "invalid_json",
                "not_found",
                "already_ordered",
                "payload_too_large",
                "not_eligible",
                "overloaded",
            ),
        },
    )
    def post(self, request):
        body = json_body(request)
        if not isinstance(body, dict):
            raise InvalidJSON("The body must be a JSON object.")
        key = _idempotency_key(request)
        order_request, errors = order_request_validate(body)
        if order_request is None:
            raise ApiError("validation_error", "Some fields are missing or invalid.", details=errors)
        caller = self.caller
        admission = order_admit(
            launch=order_request.launch,
            customer=order_request.customer,
            sku=order_request.sku,
            fulfilment=order_request.fulfilment,
            store=order_request.store,
            channel=Order.Channel.PARTNER,
            partner_id=caller.partner_id,
            idempotency_key=key,
            idempotency_scope=caller.idempotency_scope,
        )
        order = admission.order
        position = getattr(order, "admitted_position", None)
        if position is None:  # a replay, or the embedded database: read it now
            position = order_queue_position(order=order).position
        if admission.replayed:  # loaded with its relations: answer its current state
            data = order_json(order, queue_position=position)
        else:  # fresh: the request's codes are the row's, no query needed
            data = {
                "reference": order.reference,
                "launch": order_request.launch,
                "customer": order_request.customer,
                "sku": order_request.sku,
                "fulfilment": order.fulfilment,
                "store": order_request.store,
                "channel": order.channel,
                "status": order.status,
                "queue_position": position,
                "created_at": order.created_at,
            }
        return Response(data, status=202)


class OrderBulkView(PartnerAPIView):
    @extend_schema(
        operation_id="orders_bulk",
        request=s.BulkRequestSerializer,
        responses={
            200: s.BulkResponseSerializer,
            **_errors("invalid_json", "validation_error", "payload_too_large", "overloaded"),
        },
    )
    def post(self, request):
        body = json_body(request)
        if isinstance(body, dict):
            items = body.get("orders")
            if not isinstance(items, list):
                raise ApiError(
                    "validation_error",
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
                "validation_error",
                "Some fields are missing or invalid.",
                details={"orders": ["Send a list of 1 to 1,000 orders."]},
            )
        outcomes = orders_admit_bulk(
            items=items, channel=Order.Channel.PARTNER, partner_id=self.caller.partner_id
        )
        results = []
        for outcome in outcomes:
            if outcome.order is not None:
                results.append({"index": outcome.index, "status": 202, "order": order_json(outcome.order)})
            else:
                refusal = outcome.refusal
                results.append(
                    {
                        "index": outcome.index,
                        "status": STATUS_FOR_CODE.get(refusal.code, 400),
                        "error": {
                            "code": refusal.code,
                            "message": refusal.message,
                            "details": refusal.details,
                        },
                    }
                )
        return Response({"results": results})


class OrderDetailView(PartnerAPIView):
    @extend_schema(operation_id="orders_retrieve", responses={200: s.OrderSerializer, **_errors("not_found")})
    def get(self, request, reference: str):
        order = (
            Order.objects.filter(reference=reference, partner_id=self.caller.partner_id)
            .select_related("launch", "customer", "sku", "store")
            .first()
        )
        if order is None:
            raise ApiError("not_found", f"There is no order {reference!r} for this partner.")
        return Response(order_json(order, queue_position=_position(order)))


class StoreListView(PartnerAPIView):
    @extend_schema(operation_id="stores_list", responses={200: s.StoreListSerializer, **_errors()})
    def get(self, request):
        stores = Store.objects.filter(partner_id=self.caller.partner_id, is_active=True).order_by("code")
        return Response({"results": list(stores.values("code", "name", "opens_at_launch"))})


class StoreStockView(PartnerAPIView):
    @extend_schema(
        operation_id="stores_stock", responses={200: s.StoreStockSerializer, **_errors("not_found")}
    )
    def get(self, request, code: str):
        store = Store.objects.filter(code=code, partner_id=self.caller.partner_id).first()
        if store is None:
            raise ApiError("not_found", f"There is no store {code!r} for this partner.")
        rows = (
            Stock.objects.filter(location__in=Location.objects.filter(store=store))
            .order_by("sku__code")
            .values_list("sku__code", "on_hand", "reserved")
        )
        return Response(
            {
                "store": store.code,
                "stock": [
                    {"sku": sku, "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}
                    for sku, on_hand, reserved in rows
                ],
            }
        )
