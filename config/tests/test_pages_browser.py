"""Every page in a real browser (Debian Chromium): fits a phone, renders clean on a desktop,
passes an axe-core scan; and the launch-morning flows that matter most work on a phone.

The list of pages is derived from the URL patterns: every named URL is either a page
(with how to fill its path from the seeded demo) or says why it is not one, and a test
fails when a new URL is neither, so a page is never silently left out.

One browser for the session (pytest-playwright's), one context per role and screen size
for the module, and one seeded world (seed_demo --story, small) for the module: each page
test is a navigation and a scan, not a new database.
"""

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import URLResolver, get_resolver, reverse
from playwright.sync_api import Browser, Page, expect

# Each test runs in a transaction of its own that is rolled back (nothing it writes on its
# connection reaches the server); the world is committed once for the module, and a test
# that changes what the server shows does so through committed() on a connection of its own.
pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db]
expect.set_options(timeout=15_000)
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE, NARROWEST, DESKTOP = 390, 360, 1440


# --- Which URLs are pages, and for whom -----------------------------------------------

# name -> (who opens it, the ways to open it: (path kwargs or a callable of the world, query)).
PAGES: dict[str, tuple[str, list]] = {
    "login": ("anonymous", [{}]),
    "two-factor-verify": ("head", [{}]),
    "two-factor-setup": ("head", [{}]),
    "journey-launches": ("customer", [{}]),
    "journey-launch": ("customer", [{"slug": "iphone-3g"}, {"slug": "iphone-3g-pay-and-go"}]),
    "journey-order": (
        "customer",
        [
            lambda w: {"reference": w.waitlisted},
            lambda w: {"reference": w.ready},
            lambda w: {"reference": w.collected},
        ],
    ),
    "unsubscribe": ("customer", [lambda w: {"token": w.unsubscribe_token}]),
    "journey-claim": ("customer", [lambda w: {"token": w.claim_token}]),
    "store-detail": ("staff", [{"code": "S001"}]),
    "inventory:store-receiving": ("staff", [{"code": "S001"}]),
    "store-order-list": ("staff", [{"code": "S001"}, ({"code": "S001"}, "?status=allocated")]),
    "store-order-detail": ("staff", [lambda w: {"code": "S001", "reference": w.ready}]),
    "launch-list": ("head", [{}]),
    "launch-overview": ("head", [{"slug": "iphone-3g"}]),
    "rehearsal-list": ("head", [{}]),
    "launch-fairness": ("head", [{"slug": "iphone-3g"}]),
    "inventory:delivery-list": ("head", [{}]),
    "inventory:plan-detail": ("head", [lambda w: {"reference": w.delivery}]),
    "inventory:delivery-intake": ("head", [lambda w: {"reference": w.delivery}]),
    "inventory:demand": ("head", [{"slug": "iphone-3g"}]),
    "inventory:over-counts": ("head", [{}]),
    "order-list": ("head", [{}, ({}, "?status=waitlisted&channel=online"), ({}, "?q=nosuch")]),
    "order-detail": (
        "head",
        [lambda w: {"reference": w.waitlisted}, lambda w: {"reference": w.collected}],
    ),
    "customer-lookup": ("head", [{}, ({}, "?q=D00000")]),
    "customer-detail": ("head", [lambda w: {"account_number": w.customer_with_order}]),
    "campaigns": ("head", [{}]),
    "campaign-preview": ("head", [({}, "?launch=iphone-3g&kind=apology&customer=D0000001")]),
    "campaign-detail": ("head", [lambda w: {"pk": w.campaign}]),
    "webhook-list": ("head", [{}]),
    "webhook-endpoint": ("head", [lambda w: {"pk": w.webhook_endpoint}]),
    "system": ("head", [{}]),
}
POST_ONLY = "an action (POST only); its page is the one it redirects to"
NOT_PAGES: dict[str, str] = {
    "home": "redirects to the user's own page",
    "logout": POST_ONLY,
    "brand-css": "a stylesheet",
    "healthz": "a probe for orchestrators (plain text)",
    "readyz": "a probe for load balancers (django-health-check's answer)",
    "metrics": "Prometheus's scrape (text format)",
    "launch-charts": "JSON for the overview's charts",
    "rehearsal-report": "a rehearsal's own self-contained report page (inline style, no script, no base template)",
    "rehearsal-report-json": "JSON of a rehearsal's report",
    "launch-fair-start": POST_ONLY,
    "journey-availability": "an htmx fragment of journey-launch, scanned inside it",
    "store-collect-list": "an htmx fragment of store-detail (without htmx it redirects there), scanned inside it",
    "store-deliveries": "an htmx fragment of store-detail (without htmx it redirects there), scanned inside it",
    "journey-register": POST_ONLY,
    "journey-order-place": POST_ONLY,
    "launch-notice-settings": POST_ONLY,
    "inventory:plan-save": POST_ONLY,
    "inventory:plan-suggest": POST_ONLY,
    "inventory:plan-approve": POST_ONLY,
    "inventory:over-count-decide": POST_ONLY,
    "store-ticket-issue": POST_ONLY,
    "store-serve-next": POST_ONLY,
    "store-ticket-pass-over": POST_ONLY,
    "store-order-collect": POST_ONLY,
    "webhook-endpoint-action": POST_ONLY,
    "webhook-delivery-retry": POST_ONLY,
}
# The app's own error pages, which no URL names.
ERROR_PAGES = [("404", "customer", "/no-such-page/"), ("403", "staff", "/stores/S002/")]


def named_urls() -> dict[str, str]:
    """Every named URL of the project outside the admin and the partner API: name -> route."""

    def walk(patterns, prefix="", namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                inner = f"{namespace}{p.namespace}:" if p.namespace else namespace
                yield from walk(p.url_patterns, prefix + str(p.pattern), inner)
            elif p.name:
                yield namespace + p.name, prefix + str(p.pattern)

    return {
        name: route
        for name, route in walk(get_resolver().url_patterns)
        # Django's admin, and the partner API (JSON; its docs are drf-spectacular's Swagger UI).
        if not name.startswith("admin:") and not route.startswith("api/")
    }


@dataclass(frozen=True)
class PageCase:
    id: str
    who: str
    name: str = ""
    how: object = None
    path: str = ""

    def url(self, world) -> str:
        if self.path:
            return self.path
        how = self.how(world) if callable(self.how) else self.how
        kwargs, query = how if isinstance(how, tuple) else (how, "")
        kwargs = {k: (v(world) if callable(v) else v) for k, v in kwargs.items()}
        return reverse(self.name, kwargs=kwargs) + query


def page_cases() -> list[PageCase]:
    cases = []
    for name in sorted(set(named_urls()) & set(PAGES)):
        who, ways = PAGES[name]
        for index, how in enumerate(ways):
            cases.append(PageCase(id=f"{name}-{index}", who=who, name=name, how=how))
    cases += [PageCase(id=f"error-{code}", who=who, path=path) for code, who, path in ERROR_PAGES]
    return cases


CASES = page_cases()


# --- One seeded world and one browser context per role and size, for the module ---------


@dataclass
class World:
    staff: tuple[str, str]
    head: tuple[str, str]
    head_codes: list[str] = field(default_factory=list)
    waitlisted: str = ""
    ready: str = ""
    collected: str = ""
    delivery: str = ""
    campaign: int = 0
    webhook_endpoint: int = 0
    customer_with_order: str = ""
    unsubscribe_token: str = ""
    claim_token: str = ""
    can_order: list[str] = field(default_factory=list)


def _webhook_endpoint_with_a_log() -> int:
    """The partner's endpoint, with a delivery that failed once and one delivered."""
    from stores.models import Partner, WebhookAttempt, WebhookDelivery, WebhookEvent
    from stores.services.webhooks import webhook_endpoint_create

    endpoint = webhook_endpoint_create(
        partner=Partner.objects.get(code="cpw"),
        url="https://hooks.cpw.example/launchday",
        event_types=["order.waitlisted", "order.allocated"],
    )
    event = WebhookEvent.objects.create(
        partner=endpoint.partner, type="order.allocated", data={}, subject="ABC123"
    )
    failed = WebhookDelivery.objects.create(event=event, endpoint=endpoint, status="pending", attempts=1)
    WebhookAttempt.objects.create(delivery=failed, status_code=503, duration_ms=40, error="HTTP 503")
    WebhookDelivery.objects.create(
        event=event, endpoint=endpoint, status="delivered", attempts=1, is_replay=True
    )
    return endpoint.pk


def _claim_token_of_a_held_unit(*, can_order: list[str]) -> str:
    """A stock notice's link, to a customer without an order, for one unit held at S001."""
    import datetime

    from django.utils import timezone

    from customers.services.outbox import claim_token_make
    from inventory.models import Launch, Location
    from orders.models import ClaimWindow, StockNotice

    launch = Launch.objects.get(slug="iphone-3g")
    told = StockNotice.objects.filter(launch=launch, window__status="open", order__isnull=True).first()
    if told is not None:  # the demo's story told someone already
        return claim_token_make(notice_id=told.pk, expires_at=told.window.closes_at)
    customer = (
        launch.registrations.filter(customer__account_number__in=can_order)
        .exclude(customer_id__in=StockNotice.objects.filter(launch=launch).values("customer_id"))
        .first()
        .customer
    )
    window = ClaimWindow.objects.create(
        launch=launch,
        sku=launch.skus.order_by("code").first(),
        pool=Location.objects.get(code="S001"),
        units=1,
        notified=1,
        closes_at=timezone.now() + datetime.timedelta(hours=2),
    )
    notice = StockNotice.objects.create(window=window, launch=launch, customer=customer, rank=1)
    return claim_token_make(notice_id=notice.pk, expires_at=window.closes_at)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """seed_demo --story on a small scale, committed for the module's server, then flushed."""
    from customers.models import Campaign, Customer
    from customers.services.outbox import unsubscribe_token_make
    from inventory.models import Delivery
    from orders.models import Order
    from stores.tests.conftest import parse_sign_ins

    with django_db_blocker.unblock():
        out = StringIO()
        call_command(
            "seed_demo",
            customers=300,
            stores=4,
            online_units=20,
            store_units=6,
            story=True,
            stdout=out,
            stderr=StringIO(),
        )
        sign_ins = parse_sign_ins(out.getvalue())
        endpoint = _webhook_endpoint_with_a_log()
        orders = Order.objects.filter(launch__slug="iphone-3g")
        ordered = orders.values("customer_id")
        world = World(
            staff=sign_ins.staff["S001"],
            head=sign_ins.head_office,
            head_codes=sign_ins.head_office_codes,
            waitlisted=orders.filter(status="waitlisted", fulfilment="delivery").first().reference,
            ready=orders.filter(status="allocated", fulfilment="collect", store__code="S001")
            .first()
            .reference,
            collected=orders.filter(status="fulfilled").first().reference,
            delivery=Delivery.objects.get().reference,
            campaign=Campaign.objects.get().pk,
            webhook_endpoint=endpoint,
            customer_with_order=orders.first().customer.account_number,
            unsubscribe_token=unsubscribe_token_make(
                customer=Customer.objects.get(account_number="D0000001")
            ),
            can_order=list(
                Customer.objects.filter(
                    account_number__startswith="D", registrations__launch__slug="iphone-3g"
                )
                .exclude(pk__in=ordered)
                .order_by("account_number")
                .values_list("account_number", flat=True)[:5]
            ),
        )
        world.claim_token = _claim_token_of_a_held_unit(can_order=world.can_order)
        yield world
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def server(world):
    """A live server of our own: pytest-django's would flush the module's world after each test."""
    from pytest_django.live_server_helper import LiveServer

    live = LiveServer("localhost:0")
    live._live_server_modified_settings.enable()
    yield live
    live._live_server_modified_settings.disable()
    live.stop()


class Tab:
    """One reused page of one role and size, with the console errors since its last visit."""

    def __init__(self, page: Page, base: str):
        self.page, self.base, self.errors = page, base, []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        # Every Content-Security-Policy violation of the document (and its frames), as the
        # browser reports it: what the policy blocked, and by which directive.
        page.add_init_script(CSP_WATCH)

    def visit(self, path: str):
        self.errors = []
        return self.page.goto(self.base + path, wait_until="load")


@pytest.fixture(scope="module")
def tabs(browser: Browser, server, world):
    opened: dict[tuple[str, int], Tab] = {}
    contexts = []

    def tab(who: str, width: int) -> Tab:
        if (who, width) not in opened:
            # axe-core goes in as an inline script, which the pages' Content-Security-Policy
            # rightly blocks: the phone contexts (the axe scans) let the tests' own script
            # past it; the desktop contexts keep the policy whole and check it is never broken.
            context = browser.new_context(
                viewport={"width": width, "height": 800}, bypass_csp=width != DESKTOP
            )
            contexts.append(context)
            t = Tab(context.new_page(), server.url)
            if who in ("staff", "head"):
                username, password = world.staff if who == "staff" else world.head
                t.visit("/accounts/login/")
                t.page.get_by_label("Username").fill(username)
                t.page.get_by_label("Password").fill(password)
                t.page.get_by_role("button", name="Sign in").click()
                if who == "head":  # the second step: one of the single-use recovery codes
                    t.page.wait_for_url(re.compile(r"/accounts/two-factor/"))
                    t.page.get_by_label("Code").fill(world.head_codes.pop())
                    t.page.get_by_role("button", name="Continue").click()
                t.page.wait_for_url(re.compile(r"/(stores|office)/"))
            opened[(who, width)] = t
        return opened[(who, width)]

    yield tab
    for context in contexts:
        context.close()


def committed(work):
    """Run `work` on a connection of its own in autocommit, so the live server sees it at once
    (the test's own connection is inside a transaction that is rolled back)."""
    outcome: dict = {}

    def run():
        from django.db import connection

        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


CSP_WATCH = """window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                              " at " + e.sourceFile + ":" + e.lineNumber);
});"""


def csp_violations(page: Page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def horizontal_overflow(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(0, 8)
  .map(e => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${[...e.classList].join(".")} ` +
            `(${Math.round(e.getBoundingClientRect().width)} px): ${(e.innerText || "").slice(0, 40)}`)"""


def fits(page: Page) -> list[str]:
    """What sticks out past the right edge ([] when the page does not scroll sideways)."""
    if horizontal_overflow(page) <= 0:
        return []
    return page.evaluate(WIDER_THAN_THE_SCREEN) or ["the page scrolls sideways"]


def axe_problems(page: Page) -> list[str]:
    """Serious and critical axe-core violations, and ids used more than once."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
             .filter(v => v.impact === "serious" || v.impact === "critical")
             .map(v => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ")}`)"""
    )
    ids = Counter(page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)"))
    return violations + [f"duplicate id {i!r} ({n} times)" for i, n in ids.items() if n > 1]


# --- Every page ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_page_fits_a_phone_and_passes_axe(case, tabs, world):
    tab = tabs(case.who, PHONE)
    response = tab.visit(case.url(world))
    assert response is not None and response.status < 500
    assert fits(tab.page) == [], f"{case.id} scrolls sideways at {PHONE} px"
    assert axe_problems(tab.page) == []
    tab.page.set_viewport_size({"width": NARROWEST, "height": 800})
    try:
        assert fits(tab.page) == [], f"{case.id} scrolls sideways at {NARROWEST} px"
    finally:
        tab.page.set_viewport_size({"width": PHONE, "height": 800})


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_page_renders_on_a_desktop_without_console_errors(case, tabs, world):
    tab = tabs(case.who, DESKTOP)
    response = tab.visit(case.url(world))
    assert response is not None and response.status < 500
    if case.name in ("launch-overview", "inventory:demand"):
        tab.page.wait_for_load_state("networkidle")  # Chart.js has drawn, or failed to
    errors = tab.errors
    if case.path:  # an error page: the browser reports the status of the page itself, rightly
        errors = [e for e in errors if "status of 40" not in e]
    assert errors == []
    # The Content-Security-Policy is sent, and nothing on the page needed more than it allows.
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src-attr")[0]
    assert csp_violations(tab.page) == []
    assert horizontal_overflow(tab.page) <= 0
    assert tab.page.locator("h1").count() == 1


# --- Launch morning on a phone ---------------------------------------------------------


def test_store_hands_over_a_collect_order_by_typed_reference_on_a_phone(tabs, world):
    from orders.models import Order

    tab = tabs("staff", PHONE)
    page = tab.page
    tab.visit("/stores/S001/")
    box = page.get_by_label("Scan or type the order reference")
    expect(box).to_be_visible()
    page.evaluate("window.__marker = 'no reload'")

    box.fill("NOSUCH99")
    box.press("Enter")
    expect(page.locator("#store-notice")).to_contain_text(
        "No click-and-collect order NOSUCH99 is held at this store."
    )
    expect(box).to_have_value("NOSUCH99")  # kept, to correct a typo

    order = (
        Order.objects.filter(store__code="S001", status="allocated", fulfilment="collect")
        .exclude(reference=world.ready)
        .select_related("customer")
        .first()
    )
    box.fill(f" {order.reference.lower()} ")  # as a hurried thumb types it
    page.get_by_role("button", name="Hand over", exact=True).click()
    expect(page.locator("#store-notice")).to_contain_text(
        f"Order {order.reference} collected by {order.customer.name}"
    )
    expect(box).to_have_value("")  # ready for the next customer
    expect(page.locator(f'[data-order="{order.reference}"]')).to_have_count(0)
    assert page.evaluate("window.__marker") == "no reload"
    assert horizontal_overflow(page) <= 0
    order.refresh_from_db()
    assert order.status == Order.Status.FULFILLED


def test_customer_status_page_follows_the_order_to_collection_without_a_reload(tabs, world):
    from inventory.services import location_for_store, stock_receive
    from orders.models import Order
    from orders.services.admission import order_admit
    from orders.services.allocation import launch_allocate
    from orders.services.catalogue import catalogue_clear
    from orders.services.collection import order_collect
    from stores.models import Store

    def place():
        catalogue_clear()
        order = order_admit(
            launch="iphone-3g",
            customer=world.can_order[0],
            sku="IP3G-16GB-BLACK",  # owed to a waitlist at every store in the story
            fulfilment="collect",
            store="S001",
            channel="online",
        ).order
        launch_allocate(launch_id=order.launch_id)
        return order.pk

    order = Order.objects.get(pk=committed(place))
    assert order.status == Order.Status.WAITLISTED

    tab = tabs("customer", PHONE)
    page = tab.page
    tab.visit(f"/upgrade/orders/{order.reference}/")
    panel = page.locator("#status-panel")
    expect(panel.locator('[data-step="ordered"]')).to_have_class("done")
    expect(panel.locator('[data-step="reserved"]')).to_have_attribute("aria-current", "step")
    page.evaluate("window.__marker = 'no reload'")

    def delivered_to_the_store():
        ahead = Order.objects.filter(
            pool=order.pool_id, sku=order.sku_id, status="waitlisted", sequence__lte=order.sequence
        ).count()
        store = Store.objects.get(code="S001")
        stock_receive(
            location=location_for_store(store=store), sku=order.sku, quantity=ahead, reference="test"
        )
        launch_allocate(launch_id=order.launch_id)

    committed(delivered_to_the_store)
    expect(panel).to_contain_text("ready to collect")
    expect(panel.locator('[data-step="ready"]')).to_have_class("done")
    expect(panel.locator('[data-step="collected"]')).to_have_attribute("aria-current", "step")

    committed(lambda: order_collect(order=Order.objects.get(pk=order.pk)))
    expect(panel).to_contain_text("You collected your")
    expect(panel.locator('[data-step="collected"]')).to_have_class("done")
    expect(panel).not_to_have_attribute("hx-trigger", re.compile(".+"))  # finished: polling stops
    assert page.evaluate("window.__marker") == "no reload"


def test_form_error_summary_takes_focus_and_links_to_its_fields(tabs):
    tab = tabs("customer", PHONE)
    page = tab.page
    tab.visit("/upgrade/iphone-3g/")
    page.get_by_role("button", name=re.compile("Place my order|Join the waitlist")).click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    summary.get_by_role("link", name=re.compile("Account number")).click()
    expect(page.get_by_label("Account number")).to_be_focused()
    assert axe_problems(page) == []


def test_navigation_collapses_behind_a_menu_button_on_a_phone(tabs):
    tab = tabs("head", PHONE)
    page = tab.page
    tab.visit("/office/launches/")
    links = page.locator("#nav-menu")
    expect(links).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    expect(links).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("link", name="Campaigns")).to_be_visible()
    desktop = tabs("head", DESKTOP)
    desktop.visit("/office/launches/")
    expect(desktop.page.get_by_role("button", name="Menu")).to_be_hidden()
    expect(desktop.page.get_by_role("link", name="Campaigns")).to_be_visible()
