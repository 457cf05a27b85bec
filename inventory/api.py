"""Supplier API: post a delivery manifest (JSON or CSV) with a `deliveries` key.

POST /api/v1/deliveries/  Authorization: Api-Key <key>
201 {"delivery": {...}, "created": true}; the same reference again: 200, created false,
nothing changed. Every error is the envelope of API.md.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.manifests import ManifestInvalid, manifest_parse
from inventory.models import Delivery
from inventory.services import delivery_announce
from orders.codes import error_body
from stores.api_keys import key_from_header
from stores.models import Partner, PartnerAPIKey


class ManifestLineSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=32, help_text="SKU code")
    quantity = serializers.IntegerField(min_value=1, max_value=10_000_000)
    requested_quantity = serializers.IntegerField(min_value=0, max_value=10_000_000, required=False)


class ManifestSerializer(serializers.Serializer):
    reference = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        help_text="the delivery's reference: letters, digits, '.', '_', '-'",
    )
    expected_on = serializers.DateField()
    launch = serializers.SlugField(
        max_length=64, required=False, help_text="launch slug (default: the newest selling the first SKU)"
    )
    lines = ManifestLineSerializer(many=True, min_length=1, max_length=10_000)


class DeliveryLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    requested_quantity = serializers.IntegerField(allow_null=True)


class DeliverySerializer(serializers.Serializer):
    reference = serializers.CharField()
    expected_on = serializers.DateField()
    status = serializers.CharField()
    launch = serializers.CharField(allow_null=True)
    lines = DeliveryLineSerializer(many=True)


class DeliveryAnnouncedSerializer(serializers.Serializer):
    delivery = DeliverySerializer()
    created = serializers.BooleanField(
        help_text="false when this reference was already announced: nothing changed"
    )


# The partner API's error envelope (orders.api.serializers.ErrorSerializer), by reference:
# the supplier API answers with the same envelope.
ERROR = {"$ref": "#/components/schemas/Error"}


class ManifestJSONParser(BaseParser):
    """Names the JSON media type for the schema; the view reads the body itself."""

    media_type = "application/json"


class ManifestCSVParser(BaseParser):
    """Names the CSV media type for the schema; the view reads the body itself."""

    media_type = "text/csv"


def _error(status: int, code: str, message: str, details: dict | None = None) -> Response:
    headers = {"WWW-Authenticate": "Api-Key"} if status == 401 else None
    return Response(error_body(code, message, details), status=status, headers=headers)


def _supplier_key(request) -> PartnerAPIKey | None:
    # The orders API's parser: the keyword in any case, nothing but a key's shape looked up.
    key = key_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
    if key is None:
        return None
    try:
        api_key = PartnerAPIKey.objects.get_from_key(key)
    except PartnerAPIKey.DoesNotExist:
        return None
    # get_from_key leaves out revoked keys but not expired ones.
    if api_key.has_expired or not api_key.partner.is_active:
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
    # Never used to parse (the body is read raw: a manifest file, JSON or CSV); they name the
    # media types the schema offers.
    parser_classes = [ManifestJSONParser, ManifestCSVParser]

    @extend_schema(
        operation_id="delivery_manifest_post",
        summary="Announce a delivery (supplier manifest, JSON or CSV)",
        description=(
            "A supplier's key (scope `deliveries`) announces a delivery. All or nothing: any problem, "
            "named by line, and nothing is recorded. The same reference again changes nothing (200). "
            "CSV: a header row `reference,expected_on,sku,quantity[,requested_quantity][,launch]`, one "
            "row per SKU, each repeating the reference and date."
        ),
        auth=[{"PartnerApiKey": []}],
        request={
            "application/json": ManifestSerializer,
            "text/csv": {"type": "string", "minLength": 1, "description": "the manifest as CSV (see above)"},
        },
        responses={
            201: OpenApiResponse(DeliveryAnnouncedSerializer, description="Announced"),
            200: OpenApiResponse(
                DeliveryAnnouncedSerializer,
                description="Already announced with this reference; nothing changed",
            ),
            400: OpenApiResponse(
                ERROR, description="`validation_error`: details name each bad line (`line N`) or `file`"
            ),
            401: OpenApiResponse(
                ERROR, description="`not_authenticated`: no key, or an unknown or revoked key"
            ),
            403: OpenApiResponse(
                ERROR, description="`permission_denied`: the key is not a supplier's deliveries key"
            ),
            413: OpenApiResponse(
                ERROR, description="`payload_too_large`: over DELIVERY_MANIFEST_MAX_BYTES (5 MB)"
            ),
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
