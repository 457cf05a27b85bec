"""The same Idempotency-Key fired at once from many threads makes exactly one order."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from orders.models import Order
from orders.tests.api_support import ORDERS, order_body, partner_caller


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_one_idempotency_key_from_eight_threads_makes_one_order_and_one_reference(launch_with_stock):
    launch_with_stock(online_units=5)
    caller = partner_caller()
    answers: list = [None] * 8
    barrier = threading.Barrier(8)

    def send(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {caller.key}")
        try:
            barrier.wait(10)
            answers[i] = client.post(ORDERS, order_body(), format="json", HTTP_IDEMPOTENCY_KEY="once-only")
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [202] * 8, [a.content for a in answers]
    references = {a.json()["reference"] for a in answers}
    assert len(references) == 1
    assert list(Order.objects.values_list("reference", flat=True)) == list(references)
