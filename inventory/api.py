"""Supplier API: post a delivery manifest (JSON or CSV) with a `deliveries` key.

POST /api/v1/deliveries/  Authorization: Api-Key <key>
201 {"delivery": {...}, "created": true}; the same reference again: 200, created false,
nothing changed. Every error is the envelope of API.md.
"""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.manifests import ManifestInvalid, manifest_parse
from inventory.models import Delivery
from inventory.services import delivery_announce
from stores.api_keys import key_from_header
from stores.models import Partner, PartnerAPIKey


def _error(status: int, code: str, message: str, details: dict | None = None) -> Response:
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return Response(body, status=status)


def _supplier_key(request) -> PartnerAPIKey | None:
    # The orders API's parser: the keyword in any case, nothing but a key's shape looked up.
    key = key_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
    if key is None:
        return None
    try:
        api_key = PartnerAPIKey.objects.get_from_key(key)
    except PartnerAPIKey.DoesNotExist:
        return None
    if not api_key.partner.is_active:
        return None
    return api_key


def delivery_as_json(delivery: Delivery) -> dict:
    return {
        "reference": delivery.reference,
        "expected_on": delivery.expected_on.isoformat(),
        "status": delivery.status,
        "launch": delivery.launch.slug if delivery.launch_id else None,
        "lines": [
            {"sku": line.sku.code, "quantity": line.quantity, "requested_quantity": line.requested_quantity}
            for line in delivery.lines.select_related("sku").order_by("sku__code")
        ],
    }


class DeliveryManifestView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []  # the body is read raw: it is a manifest file, JSON or CSV

    @extend_schema(
        operation_id="delivery_manifest_post",
        summary="Announce a delivery (supplier manifest, JSON or CSV)",
        request={"application/json": OpenApiTypes.OBJECT, "text/csv": OpenApiTypes.STR},
        responses={
            201: OpenApiResponse(description="Announced"),
            200: OpenApiResponse(description="Already announced with this reference; nothing changed"),
            400: OpenApiResponse(description="validation_error, details name each bad line"),
            401: OpenApiResponse(description="not_authenticated"),
            403: OpenApiResponse(description="permission_denied: the key is not a deliveries key"),
            413: OpenApiResponse(description="payload_too_large"),
        },
    )
    def post(self, request):
        api_key = _supplier_key(request)
        if api_key is None:
            return _error(
                401, "not_authenticated", "Send a valid supplier key: Authorization: Api-Key <key>."
            )
        if api_key.scope != PartnerAPIKey.Scope.DELIVERIES or api_key.partner.kind != Partner.Kind.SUPPLIER:
            return _error(403, "permission_denied", "This key may not post delivery manifests.")
        limit = settings.DELIVERY_MANIFEST_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return _error(413, "payload_too_large", f"A manifest may be at most {limit:,} bytes.")
        # Read the stream ourselves (bounded), so the limit is the manifest's, not the form's.
        content = request._request.read(limit + 1)
        if len(content) > limit:
            return _error(413, "payload_too_large", f"A manifest may be at most {limit:,} bytes.")
        content_type = request.META.get("CONTENT_TYPE", "")
        try:
            manifest = manifest_parse(
                content=content, filename=".csv" if "csv" in content_type else "", content_type=content_type
            )
            delivery, created = delivery_announce(manifest=manifest, source="api", supplier=api_key.partner)
        except ManifestInvalid as exc:
            return _error(
                400,
                "validation_error",
                f"The manifest has {len(exc.problems)} problem(s); nothing was recorded.",
                exc.as_details(),
            )
        return Response(
            {"delivery": delivery_as_json(delivery), "created": created}, status=201 if created else 200
        )
