"""The Celery app. Tasks live in each app's tasks.py and are autodiscovered."""

import os

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
)

from config.logcontext import task_context_end, task_context_start, task_headers_add

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("launchday")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _json_log_handlers(logger=None, **kwargs) -> None:
    """Celery sets up its own log handlers in a worker: give them the settings' JSON
    format and the request context, so a task's lines read like the web's."""
    import logging
    import logging.config

    from django.conf import settings

    from config.logcontext import RequestContextFilter

    if logger is None or not settings.LOG_JSON:
        return
    formatter = logging.config.DictConfigurator({"version": 1}).configure_custom(
        dict(settings.LOGGING["formatters"]["json"])
    )
    for handler in logger.handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RequestContextFilter())


def _process_exited(**kwargs) -> None:
    from config.metrics import process_exited

    process_exited()


# Request ids follow a request into the tasks it sends (config.logcontext); a pool
# process that ends tells the metrics' multiprocess files (config.metrics).
before_task_publish.connect(task_headers_add, weak=False)
task_prerun.connect(task_context_start, weak=False)
task_postrun.connect(task_context_end, weak=False)
after_setup_logger.connect(_json_log_handlers, weak=False)
after_setup_task_logger.connect(_json_log_handlers, weak=False)
worker_process_shutdown.connect(_process_exited, weak=False)
