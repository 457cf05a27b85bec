"""Polled panels answered from memory under the real server (config.polls): from Django's
latest answer, only to sessions Django let in, refreshed as the figures change, and
refused soon after Django stops letting a session in."""

import http.client
import re
import time

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from customers.tests.factories import CustomerFactory
from inventory.services import location_online_pool
from orders.models import Order
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, UserFactory, head_office_login

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

RECHECK_SECONDS = 1.0


def poll(port: int, path: str, session: str, *, gzip: bool = False) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"HX-Request": "true", "Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}
    if gzip:
        headers["Accept-Encoding"] = "gzip"
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    found = {name.lower(): value for name, value in answer.getheaders()}
    return answer.status, found, body.decode("utf-8", "replace") if not gzip else ""


def queued_shown(html: str) -> str:
    found = re.search(r'data-field="queued">(.*?)</dd>', html, re.S)
    assert found, html[:500]
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def session_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def head_office_session():
    user = UserFactory(username="head")
    StaffMembership.objects.create(user=user, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    client = Client()
    head_office_login(client, user)
    return client


@pytest.fixture
def front(live_front_factory):
    # One worker, so every poll meets the same process's memory.
    return live_front_factory(workers=1, extra_env={"POLL_RECHECK_SECONDS": str(RECHECK_SECONDS)})


def queue_orders(launch, sku, n: int, *, start: int = 0) -> None:
    online = location_online_pool()
    Order.objects.bulk_create(
        [
            Order(
                reference=f"POLL{start + k:05d}",
                launch=launch,
                customer=CustomerFactory(),
                sku=sku,
                channel=Order.Channel.PARTNER,
                fulfilment=Order.Fulfilment.DELIVERY,
                pool=online,
                created_at=timezone.now(),
            )
            for k in range(n)
        ]
    )


def test_a_poll_is_answered_from_django_first_then_from_memory_and_follows_the_figures(
    front, head_office_session, launch_with_sku
):
    launch, sku = launch_with_sku
    session = session_of(head_office_session)
    path = reverse("system")
    queue_orders(launch, sku, 2)

    status, headers, first = poll(front.port, path, session)
    assert status == 200 and "age" not in headers  # Django answered it
    assert headers["launchday-shared-panel"] == "1" and queued_shown(first) == "2"
    status, headers, second = poll(front.port, path, session)
    assert status == 200 and headers.get("age") == "0", str(headers)  # from memory
    assert second == first and headers["x-request-id"]
    # Gzip-accepting clients get Django's compressed answer, kept on its own.
    assert poll(front.port, path, session, gzip=True)[1].get("content-encoding") == "gzip"

    queue_orders(launch, sku, 3, start=2)
    # The System panel counts at most every second (config.watch) and the answer is kept
    # POLL_SHARE_SECONDS: a poll after that still gets the answer in hand, and has it
    # refreshed for the polls after it.
    deadline = time.monotonic() + 10
    while queued_shown(poll(front.port, path, session)[2]) != "5":
        assert time.monotonic() < deadline, "the panel never showed the new orders"
        time.sleep(0.2)


def test_a_session_django_no_longer_lets_in_is_refused_after_the_recheck(front, head_office_session):
    session = session_of(head_office_session)
    path = reverse("system")
    assert poll(front.port, path, session)[0] == 200
    assert "age" in poll(front.port, path, session)[1]

    Session.objects.filter(session_key=session).delete()  # signed out (or expired) elsewhere
    deadline = time.monotonic() + RECHECK_SECONDS + 5
    while True:
        status, headers, body = poll(front.port, path, session)
        if "hx-redirect" in headers:
            break
        assert time.monotonic() < deadline, "a signed-out session was still shown the panel"
        assert "age" in headers  # until the recheck, the panel from memory
        time.sleep(0.2)
    assert headers["hx-redirect"].startswith(reverse("login"))
    assert 'id="system-panel"' not in body and "launchday-shared-panel" not in headers


def test_a_session_django_never_let_in_never_gets_the_panel(front, head_office_session):
    path = reverse("system")
    assert poll(front.port, path, session_of(head_office_session))[0] == 200  # the panel is kept
    store_staff = Client()
    store_staff.force_login(StaffMembershipFactory().user)
    for _ in range(3):
        status, headers, body = poll(front.port, path, session_of(store_staff))
        assert status == 403 and "age" not in headers and 'id="system-panel"' not in body
    status, headers, _ = poll(front.port, path, "no-such-session")
    assert "hx-redirect" in headers and "age" not in headers


def test_the_launch_overview_panel_is_shared_but_its_page_is_not(front, head_office_session, launch_with_sku):
    launch, _ = launch_with_sku
    session = session_of(head_office_session)
    path = reverse("launch-overview", kwargs={"slug": launch.slug})
    status, headers, body = poll(front.port, path, session)
    assert status == 200 and headers.get("launchday-shared-panel") == "1", (status, headers, body[:300])
    status, headers, body = poll(front.port, path, session)
    assert status == 200 and "age" in headers and 'id="launch-pulse"' in body and "<h1" not in body

    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    conn.request("GET", path, headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"})
    page = conn.getresponse()
    assert page.status == 200 and page.getheader("age") is None and b"<h1" in page.read()
