"""The partner API's webhooks (scope `webhooks`): endpoints, the delivery log, retries
and replays. Thin views over stores.services.webhooks; the same envelope as every view.
"""

import datetime

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from orders.api import serializers as s
from orders.api.auth import HasWebhooksScope
from orders.api.errors import ApiError, InvalidJSON
from orders.api.rendering import json_body
from orders.api.views import OrderCursorPagination, PartnerAPIView, _errors
from orders.codes import ErrorCode
from stores.models import Partner, WebhookDelivery, WebhookEndpoint, webhook_id
from stores.selectors import webhook_deliveries, webhook_endpoints_for_partner
from stores.services.webhooks import (
    EndpointDisabled,
    EndpointInvalid,
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_replay,
)

ENDPOINT_FIELDS = {"url", "event_types", "description", "enabled"}


def endpoint_json(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict:
    body = {
        "id": endpoint.pk,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "enabled": endpoint.is_enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "disabled_at": endpoint.disabled_at,
        "failing_since": endpoint.failing_since,
        "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        "created_at": endpoint.created_at,
    }
    if secret:
        body["secret"] = endpoint.secret
    return body


def delivery_json(delivery: WebhookDelivery, *, attempts: bool = False) -> dict:
    event = delivery.event
    body = {
        "id": delivery.pk,
        "endpoint": delivery.endpoint_id,
        "webhook_id": webhook_id(event.public_id),
        "event_type": event.type,
        "subject": event.subject,
        "occurred_at": event.occurred_at,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at
        if delivery.status == WebhookDelivery.Status.PENDING
        else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "replay": delivery.is_replay,
        "delivered_at": delivery.delivered_at,
    }
    if attempts:
        body["payload"] = {"type": event.type, "timestamp": event.occurred_at, "data": event.data}
        body["attempt_log"] = [
            {
                "attempted_at": a.attempted_at,
                "request_headers": a.request_headers,
                "status_code": a.status_code,
                "response_body": a.response_body,
                "duration_ms": a.duration_ms,
                "error": a.error,
            }
            for a in delivery.attempt_log.all()
        ]
    return body


def _invalid(errors: dict[str, list[str]]) -> ApiError:
    return ApiError(ErrorCode.VALIDATION_ERROR, "Some fields are missing or invalid.", details=errors)


def _object_body(request) -> dict:
    body = json_body(request)
    if not isinstance(body, dict):
        raise InvalidJSON("The body must be a JSON object.")
    return body


def _moment(value: object, field: str) -> datetime.datetime | None:
    if value is None:
        return None
    moment = parse_datetime(value) if isinstance(value, str) and len(value) <= 64 else None
    if moment is None or moment.tzinfo is None:
        raise _invalid({field: ["An ISO 8601 date and time with its offset, such as 2008-07-11T08:02:00Z."]})
    return moment


class WebhookAPIView(PartnerAPIView):
    permission_classes = [HasWebhooksScope]

    def endpoint(self, pk: str) -> WebhookEndpoint:
        endpoint = (
            webhook_endpoints_for_partner(partner_id=self.caller.partner_id).filter(pk=int(pk)).first()
            if pk.isdigit() and len(pk) < 18
            else None
        )
        if endpoint is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"There is no webhook endpoint {pk!r} for this partner.")
        return endpoint


class EndpointCollectionView(WebhookAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_list", responses={200: s.WebhookEndpointListSerializer, **_errors()}
    )
    def get(self, request):
        endpoints = webhook_endpoints_for_partner(partner_id=self.caller.partner_id)
        return Response({"results": [endpoint_json(e) for e in endpoints]})

    @extend_schema(
        operation_id="webhook_endpoints_create",
        request=s.WebhookEndpointRequestSerializer,
        responses={
            201: OpenApiResponse(
                s.WebhookEndpointWithSecretSerializer, description="the secret is shown this once"
            ),
            **_errors(ErrorCode.INVALID_JSON, ErrorCode.VALIDATION_ERROR),
        },
    )
    def post(self, request):
        body = _object_body(request)
        unknown = set(body) - (ENDPOINT_FIELDS - {"enabled"})
        if unknown:
            raise _invalid({name: ["Unknown field."] for name in sorted(unknown)})
        description = body.get("description", "")
        try:
            endpoint = webhook_endpoint_create(
                partner=Partner.objects.get(pk=self.caller.partner_id),
                url=body.get("url"),
                event_types=body.get("event_types"),
                description=description,
            )
        except EndpointInvalid as exc:
            raise _invalid(exc.errors) from None
        return Response(endpoint_json(endpoint, secret=True), status=201)


class EndpointDetailView(WebhookAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        responses={200: s.WebhookEndpointSerializer, **_errors(ErrorCode.NOT_FOUND)},
    )
    def get(self, request, pk: str):
        return Response(endpoint_json(self.endpoint(pk)))

    @extend_schema(
        operation_id="webhook_endpoints_update",
        request=s.WebhookEndpointPatchSerializer,
        responses={
            200: s.WebhookEndpointSerializer,
            **_errors(ErrorCode.INVALID_JSON, ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_FOUND),
        },
    )
    def patch(self, request, pk: str):
        endpoint = self.endpoint(pk)
        body = _object_body(request)
        unknown = set(body) - ENDPOINT_FIELDS
        if unknown:
            raise _invalid({name: ["Unknown field."] for name in sorted(unknown)})
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise _invalid({"enabled": ["true or false."]})
        for name in ("url", "event_types", "description"):
            if name in body and body[name] is None:
                raise _invalid({name: ["May not be null."]})
        try:
            endpoint = webhook_endpoint_update(
                endpoint=endpoint,
                url=body.get("url"),
                event_types=body.get("event_types"),
                description=body.get("description"),
                enabled=enabled,
                disabled_by=WebhookEndpoint.DisabledReason.PARTNER,
            )
        except EndpointInvalid as exc:
            raise _invalid(exc.errors) from None
        return Response(endpoint_json(endpoint))

    @extend_schema(
        operation_id="webhook_endpoints_destroy", responses={204: None, **_errors(ErrorCode.NOT_FOUND)}
    )
    def delete(self, request, pk: str):
        webhook_endpoint_delete(endpoint=self.endpoint(pk))
        return Response(status=204)


class EndpointRotateView(WebhookAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        request=None,
        responses={
            200: OpenApiResponse(
                s.WebhookEndpointWithSecretSerializer,
                description="the new secret, shown this once; the previous one signs too until previous_secret_expires_at",
            ),
            **_errors(ErrorCode.NOT_FOUND),
        },
    )
    def post(self, request, pk: str):
        endpoint = webhook_endpoint_rotate_secret(endpoint=self.endpoint(pk))
        return Response(endpoint_json(endpoint, secret=True))


class EndpointReplayView(WebhookAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_replay",
        request=s.WebhookReplayRequestSerializer,
        responses={
            202: s.WebhookReplaySerializer,
            **_errors(ErrorCode.INVALID_JSON, ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_FOUND),
        },
    )
    def post(self, request, pk: str):
        endpoint = self.endpoint(pk)
        body = _object_body(request)
        since = _moment(body.get("since"), "since")
        until = _moment(body.get("until"), "until")
        if since is None:
            raise _invalid({"since": ["Required: the start of the range to replay."]})
        if until is not None and until <= since:
            raise _invalid({"until": ["Must be after since."]})
        try:
            replayed = webhook_replay(endpoint=endpoint, since=since, until=until)
        except EndpointDisabled as exc:
            raise _invalid({"endpoint": [str(exc)]}) from None
        except ValueError as exc:
            raise _invalid({"since": [str(exc)]}) from None
        return Response({"replayed": replayed}, status=202)


class DeliveryCursorPagination(OrderCursorPagination):
    ordering = "-id"


class DeliveryCollectionView(WebhookAPIView):
    @extend_schema(
        operation_id="webhook_deliveries_list",
        parameters=[
            OpenApiParameter("endpoint", int, description="one endpoint's deliveries"),
            OpenApiParameter("status", str, enum=WebhookDelivery.Status.values),
            OpenApiParameter("cursor", str, description="from next or previous"),
            OpenApiParameter("page_size", int, description="1 to 500 (default 100)"),
        ],
        responses={200: s.WebhookDeliveryPageSerializer, **_errors(ErrorCode.VALIDATION_ERROR)},
    )
    def get(self, request):
        deliveries = webhook_deliveries(partner_id=self.caller.partner_id)
        endpoint = request.query_params.get("endpoint")
        if endpoint is not None:
            if not (endpoint.isdigit() and len(endpoint) < 18):
                raise exceptions.ValidationError({"endpoint": ["An endpoint id."]})
            deliveries = deliveries.filter(endpoint_id=int(endpoint))
        status = request.query_params.get("status")
        if status is not None:
            if status not in WebhookDelivery.Status.values:
                raise exceptions.ValidationError(
                    {"status": [f"One of {', '.join(WebhookDelivery.Status.values)}."]}
                )
            deliveries = deliveries.filter(status=status)
        paginator = DeliveryCursorPagination()
        page = paginator.paginate_queryset(deliveries, request, view=self)
        return paginator.get_paginated_response([delivery_json(d) for d in page])


class DeliveryView(WebhookAPIView):
    def delivery(self, pk: str) -> WebhookDelivery:
        delivery = (
            webhook_deliveries(partner_id=self.caller.partner_id)
            .prefetch_related("attempt_log")
            .filter(pk=int(pk))
            .first()
            if pk.isdigit() and len(pk) < 18
            else None
        )
        if delivery is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"There is no delivery {pk!r} for this partner.")
        return delivery


class DeliveryDetailView(DeliveryView):
    @extend_schema(
        operation_id="webhook_deliveries_retrieve",
        responses={200: s.WebhookDeliveryDetailSerializer, **_errors(ErrorCode.NOT_FOUND)},
    )
    def get(self, request, pk: str):
        return Response(delivery_json(self.delivery(pk), attempts=True))


class DeliveryRetryView(DeliveryView):
    @extend_schema(
        operation_id="webhook_deliveries_retry",
        request=None,
        responses={
            202: s.WebhookDeliverySerializer,
            **_errors(ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_FOUND),
        },
    )
    def post(self, request, pk: str):
        try:
            delivery = webhook_delivery_retry(delivery=self.delivery(pk))
        except EndpointDisabled as exc:
            raise _invalid({"endpoint": [str(exc)]}) from None
        return Response(delivery_json(delivery), status=202)
