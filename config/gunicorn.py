"""gunicorn settings for `make serve` and `make bench` (command-line options add to these)."""


def post_worker_init(worker) -> None:
    """Warm each worker before it takes its first request.

    Loading a launch's eligible customers into the process takes a second or two for
    400,000 of them; done here, it is not paid by the first customers of the window.
    """
    from config.heap import heap_settle
    from orders.services.catalogue import admission_warm

    admission_warm()
    heap_settle()


def child_exit(server, worker) -> None:
    """A worker is gone (ended, or killed and replaced): tell the metrics' multiprocess
    files (config/metrics.py), as prometheus_client asks of gunicorn."""
    from config.metrics import process_exited

    process_exited(worker.pid)
