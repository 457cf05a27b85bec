"""A small seeded demo (seed_demo itself), and its sign-ins parsed from what it prints."""

from dataclasses import dataclass, field
from io import StringIO

import pytest
from django.core.management import call_command


@dataclass
class SignIns:
    stdout: str
    stderr: str = ""
    partner_key: str = ""
    staff: dict[str, tuple[str, str]] = field(default_factory=dict)  # store code -> (username, password)
    head_office: tuple[str, str] = ("", "")
    head_office_codes: list[str] = field(default_factory=list)  # single-use second-step codes


def parse_sign_ins(stdout: str, stderr: str = "") -> SignIns:
    result = SignIns(stdout=stdout, stderr=stderr)
    for line in stdout.splitlines():
        kind, *rest = line.split(" ")
        if kind == "partner":
            result.partner_key = rest[1]
        elif kind == "staff":
            username, password, store_code = rest
            result.staff[store_code] = (username, password)
        elif kind == "head-office":
            result.head_office = (rest[0], rest[1])
        elif kind == "head-office-codes":
            result.head_office_codes = rest[1:]
    return result


def seed(**options) -> SignIns:
    out, err = StringIO(), StringIO()
    call_command("seed_demo", stdout=out, stderr=err, **options)
    return parse_sign_ins(out.getvalue(), err.getvalue())


@pytest.fixture
def seeded(db) -> SignIns:
    return seed(customers=40, stores=4, online_units=5, store_units=2)


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 (stores/tests/receiver.py), stopped after the test."""
    from stores.tests.receiver import Receiver

    started = Receiver().start()
    yield started
    started.stop()
