"""The floor of `make bench`: the cheapest useful thing Django can do per request.

One JSON POST in, one INSERT, one small JSON answer, through the same middleware and
gunicorn settings as the order API. The ratio of the API's admissions per second to this
view's inserts per second says how much the admission path costs beyond Django itself.
Mounted only by the bench's own URLconf (bench/urls.py, under bench.settings); its table
is created by the bench's seeding (raw SQL, no model or migration, so it never exists
outside a bench database).
"""

import orjson
from django.db import connection
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def floor_view(request):
    body = orjson.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_floor (customer, sku) VALUES (%s, %s) RETURNING id",
            [body["customer"], body["sku"]],
        )
        (row_id,) = cursor.fetchone()
    return HttpResponse(orjson.dumps({"id": row_id}), status=202, content_type="application/json")
