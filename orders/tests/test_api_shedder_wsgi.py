"""The WSGI-level shedder refuses stale admissions before Django sees them."""

import time

import orjson
import pytest

from orders.api.overload import AdmissionShedderWSGI


class App:
    def __init__(self):
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        start_response("202 Accepted", [("Content-Type", "application/json")])
        return [b"{}"]


def call(app, **environ):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(
        app({"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/orders/", **environ}, start_response)
    )
    return seen["status"], seen["headers"], body


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/orders/bulk"])
def test_an_admission_that_waited_too_long_is_refused_without_reaching_django(settings, path):
    settings.ADMISSION_MAX_QUEUE_MS = 200
    django = App()
    status, headers, body = call(
        AdmissionShedderWSGI(django), PATH_INFO=path, HTTP_X_REQUEST_START=f"t={time.time() - 1:.3f}"
    )
    assert status.startswith("503")
    assert headers["Retry-After"] == str(settings.ADMISSION_RETRY_AFTER_SECONDS)
    assert orjson.loads(body)["error"]["code"] == "overloaded"
    assert int(headers["Content-Length"]) == len(body)
    assert django.calls == 0


def test_fresh_admissions_and_other_requests_go_through(settings):
    settings.ADMISSION_MAX_QUEUE_MS = 200
    django = App()
    shedder = AdmissionShedderWSGI(django)
    assert call(shedder, HTTP_X_REQUEST_START=f"t={time.time():.3f}")[0].startswith("202")
    stale = f"t={time.time() - 5:.3f}"
    assert call(shedder, REQUEST_METHOD="GET", HTTP_X_REQUEST_START=stale)[0].startswith("202")
    assert call(shedder, PATH_INFO="/upgrade/", HTTP_X_REQUEST_START=stale)[0].startswith("202")
    settings.ADMISSION_MAX_QUEUE_MS = 0
    assert call(shedder, HTTP_X_REQUEST_START=stale)[0].startswith("202")
    assert django.calls == 4
