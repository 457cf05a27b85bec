"""The beat schedule (config/settings/base.py, all of it) names tasks the workers know."""

from django.conf import settings

from config.celery import app


def test_every_beat_entry_names_a_registered_task():
    app.loader.import_default_modules()  # the apps' tasks.py, as a worker imports them
    unknown = {
        name: entry["task"]
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if entry["task"] not in app.tasks
    }
    assert not unknown
