"""A developer's machine and `make demo`: DEBUG on, plain HTTP, a development key.

Everything else (which database, cache and broker) follows the environment as in every
mode (base.py); with nothing set that is the embedded default.
"""

from .base import *  # noqa: F403
from .base import STORAGES, env, secret_key_check

DEBUG = env.bool("DEBUG", default=True)
if not SECRET_KEY and DEBUG:  # noqa: F405
    SECRET_KEY = "insecure-development-key-for-local-settings-only"  # noqa: S105 - never served publicly
if not DEBUG:
    # Without DEBUG this could be serving people: the key signs sessions and links.
    secret_key_check(SECRET_KEY)  # noqa: F405
# Emails print on the console only while developing; otherwise they go to EMAIL_HOST.
if DEBUG and not env.str("EMAIL_HOST", default="") and not env.str("EMAIL_BACKEND", default=""):
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SECURE_HSTS_PRELOAD = False
# No collectstatic on a laptop: files come from the finders as they are edited.
STORAGES["staticfiles"]["BACKEND"] = env.str(
    "STATICFILES_BACKEND", default="django.contrib.staticfiles.storage.StaticFilesStorage"
)
# A laptop's own receiver (a local tunnel, a test server) is usually plain HTTP.
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=False)
# Plain log lines on a laptop unless asked for JSON.
if DEBUG and not env.bool("LOG_JSON", default=False):
    LOGGING["handlers"]["console"].pop("formatter", None)  # noqa: F405
