"""The outbox's metrics count what the outbox table records: each email sent, each attempt
retried, each message given up on (config.metrics, launchday_emails_total)."""

import pytest
from prometheus_client import REGISTRY

from customers.models import Message
from customers.services import outbox
from customers.tests.conftest import allocated_messages

pytestmark = pytest.mark.django_db


def emails(outcome: str) -> float:
    return REGISTRY.get_sample_value("launchday_emails_total", {"outcome": outcome}) or 0.0


def test_emails_sent_retried_and_failed_are_counted_as_the_table_records_them(
    smtp_settings, smtp_sink, launch_with_sku
):
    smtp_settings.OUTBOX_MAX_ATTEMPTS = 2
    smtp_settings.OUTBOX_RETRY_BASE_SECONDS = 0
    launch, sku = launch_with_sku
    *good, bad = allocated_messages(launch=launch, sku=sku, n=4)
    smtp_sink.reject_rcpt.add(bad.customer.email)
    before = {outcome: emails(outcome) for outcome in ("sent", "retried", "failed")}

    outbox.outbox_send_batch(limit=10)
    outbox.outbox_send_batch(limit=10)

    counted = {outcome: emails(outcome) - before[outcome] for outcome in before}
    assert counted == {"sent": 3, "retried": 1, "failed": 1}
    assert Message.objects.filter(status=Message.Status.SENT).count() == counted["sent"] == smtp_sink.count()
    assert Message.objects.filter(status=Message.Status.FAILED).count() == counted["failed"]
