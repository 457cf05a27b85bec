"""Logging filters for the settings' LOGGING."""

import logging


def client_errors_in_one_line(record: logging.LogRecord) -> bool:
    """A 4xx (a 403 from a permission check, a 404) is the client's doing, not a fault:
    Django logs it with the exception's traceback, 25 lines a time. Keep the one line."""
    if 400 <= getattr(record, "status_code", 0) < 500:
        record.exc_info = None
        record.exc_text = None
    return True
