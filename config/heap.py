"""A web process's heap, settled once the process has loaded what it serves from.

Python's full collection (the oldest generation) walks every container object in the
process. A web worker holds Django, its apps, URL patterns and templates and the launches'
catalogues, all loaded before its first request and kept until it exits: on the bench's
machine a full collection there took 90-190 ms, every few minutes under load, and the
requests in that process waited for it. Moved out of the collector's sight once loaded
(gc.freeze), they are no longer walked; full collections walk what requests left behind.
A frozen object dropped later (a catalogue reloaded) is still freed by its reference count;
only a cycle among frozen objects would stay until the process exits.
"""

import gc


def heap_settle() -> None:
    """Free what loading left behind, then freeze the rest.

    Called once, when the worker is warm and before it takes requests (the ASGI front's
    startup, gunicorn's post_worker_init)."""
    gc.collect()
    gc.freeze()
