"""The operator's name and brand colour for every page (settings OPERATOR_NAME, BRAND_COLOUR)."""

import hashlib
from functools import cache

from django.conf import settings
from django.http import HttpRequest

WHITE, BLACK = "#ffffff", "#000000"
# The colour links keep when the brand colour is too light to read on white.
READABLE_ACCENT = "#0550ae"


def _luminance(colour: str) -> float:
    """WCAG relative luminance of a #rrggbb colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@cache
def brand_palette(colour: str) -> dict[str, str]:
    """The brand colour, the text colour that reads on it, and a link colour that reads on
    white (the brand itself when it does), so any BRAND_COLOUR keeps the pages legible."""
    colour = colour.lower()
    on_brand = WHITE if contrast(colour, WHITE) >= contrast(colour, BLACK) else BLACK
    link = colour if contrast(colour, WHITE) >= 4.5 else READABLE_ACCENT
    return {"brand": colour, "on_brand": on_brand, "link": link}


@cache
def brand_version(colour: str) -> str:
    return hashlib.sha256(colour.encode()).hexdigest()[:8]


def brand(request: HttpRequest) -> dict:
    return {
        "OPERATOR_NAME": settings.OPERATOR_NAME,
        "BRAND_COLOUR": settings.BRAND_COLOUR,
        "brand_version": brand_version(settings.BRAND_COLOUR),
    }
