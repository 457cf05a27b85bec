"""The "Try it" block `make demo` prints last, once the demo server answers.

It reads the sign-ins seed_demo printed (passwords are random and stored hashed, so the
file is the only place they are) and picks from the database a customer who can still
order, with the postcode the order form asks for.
"""

import time
import urllib.error
import urllib.request
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from customers.models import UpgradeRegistration
from inventory.models import Launch
from orders.models import Order

LAUNCH_SLUG = "iphone-3g"


def wait_until_answering(url: str, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own demo server
                return True
        except urllib.error.HTTPError:
            return True  # it answered, if not with a 200
        except OSError:
            time.sleep(0.2)
    return False


def customer_who_can_order(launch: Launch) -> UpgradeRegistration | None:
    """A registered customer without an order yet who would like home delivery."""
    ordered = Order.objects.filter(launch=launch).values("customer_id")
    return (
        UpgradeRegistration.objects.filter(launch=launch, preferred_store=None)
        .exclude(customer_id__in=ordered)
        .select_related("customer", "preferred_sku")
        .order_by("customer__account_number")
        .first()
    )


class Command(BaseCommand):
    help = "Wait for the demo server to answer, then print where to start and how to sign in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sign-ins", required=True, help="the file seed_demo's output was saved to")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the demo server's address")
        parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for it (default 60)")

    def handle(self, *args, sign_ins: str, url: str, wait: float, **options) -> None:
        base = url.rstrip("/")
        path = Path(sign_ins)
        if not path.exists():
            raise CommandError(f"No sign-ins at {path}: run seed_demo first and save what it prints there.")
        staff, head, partner_key, codes = None, None, None, []
        for line in path.read_text().splitlines():
            kind, *rest = line.split()
            if kind == "staff" and staff is None:
                staff = rest  # username, password, store code
            elif kind == "head-office":
                head = rest
            elif kind == "head-office-codes":
                codes = rest[1:]
            elif kind == "partner":
                partner_key = rest[1]
        if not (staff and head and partner_key):
            raise CommandError(f"{path} does not hold seed_demo's sign-in lines.")
        if wait and not wait_until_answering(base + reverse("journey-launches"), timeout=wait):
            raise CommandError(f"The demo server did not answer at {base} within {wait:.0f}s.")

        launch = Launch.objects.filter(slug=LAUNCH_SLUG).first()
        customer = customer_who_can_order(launch) if launch else None
        username, password, store = staff
        lines = [
            "",
            "=" * 72,
            f"Try it: {base}/",
            "",
            f"  Store staff   {username} / {password}",
            f"                {base}{reverse('store-detail', kwargs={'code': store})}"
            f"   (every store's sign-in: {path})",
            f"  Head office   {head[0]} / {head[1]}"
            + (
                f", then the code {codes[0]} (each of the {len(codes)} in {path} works once)" if codes else ""
            ),
            f"                {base}{reverse('launch-overview', kwargs={'slug': LAUNCH_SLUG})}",
        ]
        if customer is not None:
            lines += [
                f"  Customer      account {customer.customer.account_number}, "
                f"postcode {customer.customer.postcode}",
                f"                {base}{reverse('journey-launch', kwargs={'slug': LAUNCH_SLUG})}"
                f"   (all offers: {base}{reverse('journey-launches')})",
            ]
        lines += [
            f"  Partner API   {base}/api/docs/",
            f"                Authorization: Api-Key {partner_key}",
            "",
            "Emails print here as they are sent. Stop with Ctrl-C.",
            "=" * 72,
        ]
        self.stdout.write("\n".join(lines))
