"""Partner keys: `Authorization: Api-Key <key>` resolved to its partner once per request.

djangorestframework-api-key stores `prefix.secret` keys hashed with SHA-512 (its fast
hasher for high-entropy keys, not a password hasher), looked up by prefix. Its own
permission class cannot be used as configured here: with API_KEY_CUSTOM_HEADER set to
HTTP_AUTHORIZATION its KeyParser returns the whole header, "Api-Key " included, so this
module parses the header itself and asks the library's manager to verify the key.

A verified key is remembered in process for API_KEY_CACHE_SECONDS (keyed by a digest of
the key, never the key itself), so the hot path costs no query; a revoked key stops
working within that many seconds. Unknown keys are remembered too, so a flood of bad keys
costs a dict lookup rather than a query each.
"""

import hashlib
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from config.cache import NotCached
from stores.api_keys import key_from_header
from stores.models import Partner, PartnerAPIKey

__all__ = ["key_from_header"]  # the one parser (stores.api_keys), used by the front through here
_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class PartnerKey:
    """Who is calling: the key (by prefix) and its partner. Set as request.auth."""

    key_id: str
    partner_id: int
    partner_code: str
    scope: str
    partner_active: bool
    partner_kind: str = Partner.Kind.RETAILER

    # DRF treats request.user as a user; these make it behave like an authenticated one.
    is_authenticated = True

    @property
    def idempotency_scope(self) -> str:
        return f"partner:{self.partner_id}"


_keys: dict[bytes, tuple[float, PartnerKey | None]] = {}
_keys_lock = threading.Lock()


def partner_key_cache_clear() -> None:
    with _keys_lock:
        _keys.clear()


def partner_key_cached(*, key: str) -> PartnerKey | None:
    """partner_key_resolve from memory only (for an event loop); raises NotCached."""
    hit = _keys.get(_digest(key))
    if hit is None or hit[0] <= time.monotonic():
        raise NotCached
    return hit[1]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def partner_key_resolve(*, key: str) -> PartnerKey | None:
    """The caller behind a raw key, or None for an unknown, revoked or expired key."""
    digest = _digest(key)
    now = time.monotonic()
    hit = _keys.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    holder = None
    prefix, dot, _ = key.partition(".")
    # Prefixes are 8 characters; anything else cannot be a key, so skip the query.
    if dot and len(prefix) == 8 and len(key) <= 200:
        row = PartnerAPIKey.objects.select_related("partner").filter(prefix=prefix, revoked=False).first()
        if row is not None and not row.has_expired and row.is_valid(key):
            holder = PartnerKey(
                key_id=row.prefix,
                partner_id=row.partner_id,
                partner_code=row.partner.code,
                scope=row.scope,
                partner_active=row.partner.is_active,
                partner_kind=row.partner.kind,
            )
    with _keys_lock:
        if len(_keys) >= _CACHE_LIMIT:
            _keys.clear()  # bounded memory, whatever a client sends
        _keys[digest] = (now + settings.API_KEY_CACHE_SECONDS, holder)
    return holder


class PartnerKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        key = key_from_header(header)
        holder = partner_key_resolve(key=key) if key else None
        if holder is None:
            raise exceptions.AuthenticationFailed()
        return holder, holder

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when the key is missing or wrong.
        return "Api-Key"


class PartnerKeyScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how partners authenticate (registered by subclassing)."""

    target_class = PartnerKeyAuthentication
    name = "PartnerApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'The partner\'s key as "Api-Key <key>".',
        }


class HasOrdersScope(permissions.BasePermission):
    """A key of an active retail partner with the `orders` scope."""

    message = "This key may not use the orders API."

    def has_permission(self, request, view) -> bool:
        holder = request.auth
        if not isinstance(holder, PartnerKey):
            raise exceptions.NotAuthenticated()
        return self.allows(holder)

    @staticmethod
    def allows(holder: PartnerKey) -> bool:
        return (
            holder.partner_active
            and holder.scope == PartnerAPIKey.Scope.ORDERS
            and holder.partner_kind == Partner.Kind.RETAILER
        )


class HasWebhooksScope(permissions.BasePermission):
    """A key of an active retail partner with the `webhooks` scope."""

    message = "This key may not use the webhooks API."

    def has_permission(self, request, view) -> bool:
        holder = request.auth
        if not isinstance(holder, PartnerKey):
            raise exceptions.NotAuthenticated()
        return (
            holder.partner_active
            and holder.scope == PartnerAPIKey.Scope.WEBHOOKS
            and holder.partner_kind == Partner.Kind.RETAILER
        )
