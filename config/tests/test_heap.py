"""A web worker settles its heap once warm: what it loaded before its first request is
frozen out of the garbage collector's full collections (config.heap)."""

import asyncio
import concurrent.futures
import gc

import pytest
from django.core.wsgi import get_wsgi_application

from orders.api.front import AdmissionFront

pytestmark = pytest.mark.django_db


@pytest.fixture
def unfrozen():
    """The test process's own heap, given back to the collector afterwards."""
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.collect()  # the startup thread's database connection among what is freed


def front_started() -> list[dict]:
    """The ASGI front through its startup, as uvicorn drives it; the messages it sent."""
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    front = AdmissionFront(get_wsgi_application())
    # A loop of its own, in a thread: a browser test in this process may hold this one's.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, front({"type": "lifespan"}, receive, send)).result()
    return sent


def test_a_started_worker_keeps_what_it_loaded_out_of_full_collections(unfrozen):
    loaded_before = {"a catalogue": ["loaded at startup"]}
    assert any(o is loaded_before for o in gc.get_objects())

    sent = front_started()

    assert sent[0] == {"type": "lifespan.startup.complete"}
    assert gc.get_freeze_count() > 0
    assert not any(o is loaded_before for o in gc.get_objects()), "still walked by every full collection"
    made_after = ["a request's leftovers"]
    assert any(o is made_after for o in gc.get_objects()), "what requests leave is still collected"
