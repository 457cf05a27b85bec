import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()

# Overloaded admissions are refused before Django builds a request (orders/api/overload.py).
from orders.api.overload import AdmissionShedderWSGI  # noqa: E402

application = AdmissionShedderWSGI(application)
