"""The ASGI application that `make serve` runs under uvicorn.

Single-order admission is served in the event loop by orders.api.front (group commit;
waiting costs a coroutine); every other request goes to Django's WSGI application on a
pool of threads, its body read first so a slow client never holds a thread.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django_application = get_wsgi_application()

from orders.api.front import AdmissionFront  # noqa: E402 - needs the apps loaded above

application = AdmissionFront(django_application)
