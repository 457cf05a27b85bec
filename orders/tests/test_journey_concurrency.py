"""One customer ordering through the partner API and the web page at the same instant.

Real threads on PostgreSQL: the unique (launch, customer, slot) constraint decides, so
exactly one order results; the web page that loses says "you already have an order"
with the winner's reference, and the API call that loses gets already_ordered.
"""

import html
import re
import threading
import time
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from customers.services.registration import eligibility_forget
from orders.models import Order
from orders.services.admission import AdmissionRefused, order_admit
from stores.tests.factories import PartnerFactory

SKU = "IP3G-8GB-BLACK"
ROUNDS = 16
# The web request does more before its insert (form, postcode check) than the API call,
# so the API side starts after a delay that sweeps across the web request's duration:
# early rounds the API wins, late rounds the web wins, and in between they collide.
STEP_SECONDS = 0.003


def _in_thread(fn, results: dict, name: str, barrier: threading.Barrier) -> threading.Thread:
    def run():
        try:
            barrier.wait(timeout=10)
            results[name] = fn()
        except Exception as error:  # the test inspects what each side got
            results[name] = error
        finally:
            connection.close()

    return threading.Thread(target=run, name=name)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_api_and_web_at_once_make_one_order_and_only_a_proved_loser_is_told_the_reference(launch_with_stock):
    launch, *_ = launch_with_stock(online_units=3, customers=ROUNDS)
    partner = PartnerFactory(code="carphone")
    for n in range(1, ROUNDS + 1):  # the run's cache may remember an earlier run's launch of this id
        eligibility_forget(launch_id=launch.pk, account_number=f"D{n:07d}")
    url = reverse("journey-order-place", kwargs={"slug": launch.slug})
    winners = {"api": 0, "web": 0}

    for n in range(1, ROUNDS + 1):
        account = f"D{n:07d}"
        channel = Order.Channel.PARTNER if n % 2 else Order.Channel.ONLINE

        def api(account=account, channel=channel, delay=(n - 1) * STEP_SECONDS):
            time.sleep(delay)
            return order_admit(
                launch=launch.slug,
                customer=account,
                sku=SKU,
                fulfilment="delivery",
                channel=channel,
                partner_id=partner.pk if channel == Order.Channel.PARTNER else None,
                idempotency_key=str(uuid.uuid4()),
                idempotency_scope=f"partner:{partner.pk}",
            )

        def web(account=account):
            return Client().post(
                url,
                {
                    "account_number": account,
                    "postcode": "SW1A 1AA",
                    "sku": SKU,
                    "fulfilment": "delivery",
                    "token": uuid.uuid4().hex,
                },
            )

        results: dict = {}
        barrier = threading.Barrier(2)
        threads = [_in_thread(api, results, "api", barrier), _in_thread(web, results, "web", barrier)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        orders = list(Order.objects.filter(launch=launch, customer__account_number=account))
        assert len(orders) == 1, f"{account}: {len(orders)} orders"
        order = orders[0]
        response = results["web"]
        assert not isinstance(response, Exception), response
        if isinstance(results["api"], AdmissionRefused):
            # The web page won: it redirected to the order's status page.
            assert results["api"].code == "already_ordered"
            if channel == Order.Channel.PARTNER:
                # The customer's own order: its reference is their credential, not the partner's.
                assert "reference" not in results["api"].details
            else:
                assert results["api"].details["reference"] == order.reference
            assert response.status_code == 302
            assert response["Location"] == reverse("journey-order", kwargs={"reference": order.reference})
            assert order.channel == Order.Channel.ONLINE
            winners["web"] += 1
        else:
            # The API won; the web page says so, friendly, with the reference and a link.
            assert not isinstance(results["api"], Exception), results["api"]
            assert results["api"].order.reference == order.reference
            assert order.channel == channel
            assert response.status_code == 200
            words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())
            assert f"You already have an order for this launch (reference {order.reference})" in words
            assert (
                reverse("journey-order", kwargs={"reference": order.reference}) in response.content.decode()
            )
            winners["api"] += 1

    assert sum(winners.values()) == ROUNDS
    assert Order.objects.filter(launch=launch).count() == ROUNDS
