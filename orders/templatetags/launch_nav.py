"""The launch head office's navigation points at (overview, demand against supply)."""

from django import template

from inventory.models import Launch
from inventory.selectors import launch_for_store_page

register = template.Library()


@register.simple_tag
def nav_launch() -> Launch | None:
    """The open launch, else the next to open, else the latest: one query, and only
    rendered in head office's navigation (store staff never pay for it)."""
    return launch_for_store_page()
