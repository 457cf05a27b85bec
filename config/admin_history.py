"""django-simple-history's admin, refusing ids that are not ids.

Its history views pass the URL's object and version ids straight to an integer lookup, so
/admin/<model>/<x>/history/ with a non-number was a 500. Every admin with history uses this.
"""

from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin


def _is_id(value: object) -> bool:
    return str(value).isascii() and str(value).isdigit() and len(str(value)) <= 18


class HistoryAdmin(SimpleHistoryAdmin):
    def history_view(self, request, object_id, extra_context=None):
        if not _is_id(object_id):
            raise Http404("No such object.")
        return super().history_view(request, object_id, extra_context=extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if not (_is_id(object_id) and _is_id(version_id)):
            raise Http404("No such version.")
        return super().history_form_view(request, object_id, version_id, extra_context=extra_context)
