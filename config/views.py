"""Project-wide pages that belong to no app: the brand stylesheet."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from config.context_processors import brand_palette


@require_GET
@cache_control(public=True, max_age=86400)
def brand_stylesheet(request: HttpRequest) -> HttpResponse:
    """The brand colours as CSS custom properties.

    A stylesheet rather than an inline style, so a Content-Security-Policy need not allow
    inline styles; the link carries a version of the colour, so a change shows at once.
    """
    palette = brand_palette(settings.BRAND_COLOUR)
    body = (
        f":root {{ --brand: {palette['brand']}; --on-brand: {palette['on_brand']}; "
        f"--accent: {palette['link']}; }}\n"
    )
    return HttpResponse(body, content_type="text/css; charset=utf-8")
