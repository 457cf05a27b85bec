"""Serving customers: `make serve`, wsgi.py, asgi.py and the Celery workers.

DEBUG is off whatever the environment says, and the settings refuse to load without a
real SECRET_KEY: a missing, short or development key would sign sessions, CSRF tokens
and unsubscribe links that anyone could forge.
"""

from .base import *  # noqa: F403
from .base import secret_key_check

DEBUG = False
secret_key_check(SECRET_KEY)  # noqa: F405
