"""Settings of the bench's stack: the project's own, plus the floor view's URL.

The bench runs its web server, Celery worker and beat with
DJANGO_SETTINGS_MODULE=bench.settings, so the floor view is mounted only when the bench
asks for it and nothing under config/ or the apps ever imports bench code.
"""

from config.settings.production import *  # noqa: F403 - what make serve runs, unchanged

ROOT_URLCONF = "bench.urls"
