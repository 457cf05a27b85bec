"""The address a request came from, for sign-in lockouts (django-axes)."""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or behind TRUSTED_PROXIES proxies the address the outermost of them
    saw: each proxy appends its peer to X-Forwarded-For, so the client is that many
    entries from the right; anything further left is whatever the client chose to send."""
    remote = request.META.get("REMOTE_ADDR")
    hops = settings.TRUSTED_PROXIES
    if not hops:
        return remote
    forwarded = [
        part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
    ]
    if len(forwarded) < hops:
        return remote
    return forwarded[-hops]
