"""Head office's rehearsals page: starts a rehearsal as a Celery task (by name), polls its
progress while one runs, lists kept reports; bad input is a form error and starts nothing."""

import pytest
from django.urls import reverse

from inventory.tests.factories import LaunchFactory, SKUFactory
from orders.models import Rehearsal
from stores.models import StaffMembership
from stores.tests.factories import StaffMembershipFactory, StoreFactory, UserFactory, head_office_login

pytestmark = pytest.mark.django_db

PAGE = "/office/rehearsals/"


@pytest.fixture
def head(client):
    user = UserFactory(username="head")
    StaffMembership.objects.create(user=user, store=None, role=StaffMembership.Role.HEAD_OFFICE)
    head_office_login(client, user)
    return user


@pytest.fixture
def launch():
    return LaunchFactory(slug="iphone-3g", skus=[SKUFactory(code="IP3G-8GB-BLACK")])


def test_head_office_starts_a_rehearsal_and_watches_it(
    client, head, launch, django_capture_on_commit_callbacks
):
    assert reverse("rehearsal-list") == PAGE
    page = client.get(PAGE)
    assert (
        page.status_code == 200
        and b"Start a rehearsal" in page.content
        and b"No rehearsal yet" in page.content
    )

    with django_capture_on_commit_callbacks(execute=False) as sent:
        answer = client.post(
            PAGE, {"launch": "iphone-3g", "duration": 30, "peak_rate": 500, "show_up": 0.5, "jitter": "on"}
        )
    assert answer.status_code == 302
    rehearsal = Rehearsal.objects.get()
    assert rehearsal.status == "queued" and len(sent) == 1  # the task leaves once the row is committed
    assert rehearsal.options["duration"] == 30 and rehearsal.options["peak_rate"] == 500
    assert rehearsal.options["jitter"] is True and rehearsal.options["fair_start"] is None

    Rehearsal.objects.filter(pk=rehearsal.pk).update(
        status="running", progress={"t": 12.0, "arrived": 900, "admitted": 700, "waiting_for_answer": 40}
    )
    fragment = client.get(PAGE, headers={"HX-Request": "true"})
    assert b"<h1>" not in fragment.content  # the table alone, for htmx to swap
    assert b'hx-trigger="every 2s"' in fragment.content and b"900 arrived, 700 admitted" in fragment.content

    Rehearsal.objects.filter(pk=rehearsal.pk).update(
        status="done",
        progress={"people": 900, "acknowledged": 700, "orders_in_database": 700, "oversold": 0, "lost": 0,
                  "duplicated": 0, "fcfs_violations": 0},
        summary={"invariants": {"lost": 0}},
        report_html="<!doctype html><html><head><style>body{color:red}</style></head><body>report</body></html>",
    )  # fmt: skip
    done = client.get(PAGE, headers={"HX-Request": "true"})
    assert b"every 2s" not in done.content  # nothing left to watch: polling stops
    assert b"700 acknowledged / 700 in the database" in done.content
    report = client.get(reverse("rehearsal-report", kwargs={"pk": rehearsal.pk}))
    assert report.status_code == 200 and report.content.endswith(b"report</body></html>")
    assert "'unsafe-inline'" in report["Content-Security-Policy"].split("style-src", 1)[1].split(";")[0]
    assert client.get(reverse("rehearsal-report-json", kwargs={"pk": rehearsal.pk})).json() == {
        "invariants": {"lost": 0}
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"launch": "no-such-launch"},
        {"duration": 0},
        {"duration": 100000},
        {"peak_rate": -5},
        {"peak_rate": "x\x00"},
        {"show_up": 2},
        {"fair_start": -1},
    ],
)
def test_bad_input_is_a_form_error_and_starts_nothing(client, head, launch, bad):
    data = {"launch": "iphone-3g", "duration": 30, "peak_rate": 500, "show_up": 0.5} | bad
    answer = client.post(PAGE, data)
    assert answer.status_code == 400
    # A NUL byte is refused before the view (the project's 400 page); the rest are form errors.
    assert b'class="errorlist' in answer.content or any("\x00" in str(v) for v in bad.values())
    assert not Rehearsal.objects.exists()


def test_only_head_office_may_rehearse_or_read_reports(client, launch):
    rehearsal = Rehearsal.objects.create(launch=launch, status="done", report_html="secret")
    client.force_login(StaffMembershipFactory(store=StoreFactory(code="S001")).user)
    assert client.get(PAGE).status_code == 403
    assert (
        client.post(
            PAGE, {"launch": "iphone-3g", "duration": 30, "peak_rate": 500, "show_up": 0.5}
        ).status_code
        == 403
    )
    assert client.get(reverse("rehearsal-report", kwargs={"pk": rehearsal.pk})).status_code == 403
    assert Rehearsal.objects.count() == 1


def test_a_report_not_yet_written_is_not_found(client, head, launch):
    running = Rehearsal.objects.create(launch=launch, status="running")
    assert client.get(reverse("rehearsal-report", kwargs={"pk": running.pk})).status_code == 404
    assert client.get(reverse("rehearsal-report-json", kwargs={"pk": running.pk})).status_code == 404
