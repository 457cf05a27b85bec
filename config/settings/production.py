"""Serving customers: `make serve`, wsgi.py, asgi.py and the Celery workers.

DEBUG is off whatever the environment says, and the settings refuse to load without a
real SECRET_KEY: a missing, short or development key would sign sessions, CSRF tokens
and unsubscribe links that anyone could forge.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403

DEBUG = False
if not SECRET_KEY:  # noqa: F405
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set SECRET_KEY in the environment (50 or more random characters), "
        "or use config.settings.local for a development server (manage.py and make demo do)."
    )
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith(("django-insecure", "insecure")):  # noqa: F405
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for production: use 50 or more random characters, e.g. "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
