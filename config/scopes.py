"""What the ASGI layers in front of Django (orders.api.front, config.polls) may read of a
request before Django sees it, and the ASGI types they share."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def django_serves_as_is(scope: Scope) -> bool:
    """Whether Django would serve this request as it stands: anything its middleware would
    turn away or redirect (an unknown Host, plain HTTP where HTTPS is required) must reach
    Django, which says so properly."""
    headers = dict(scope["headers"])
    host, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    if not validate_host(host, settings.ALLOWED_HOSTS):
        return False
    secure = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto") == b"https"
    return secure or not settings.SECURE_SSL_REDIRECT
