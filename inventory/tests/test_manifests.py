"""Manifests: validated whole, every problem named by line, nothing half-applied, idempotent."""

import json
import os

import pytest

from inventory.manifests import ManifestInvalid, manifest_parse
from inventory.models import Delivery, DeliveryLine, StockMovement
from inventory.services import delivery_announce, delivery_inbox_scan
from inventory.tests.world import make_launch

pytestmark = pytest.mark.django_db

GOOD_CSV = (
    "reference,expected_on,sku,quantity,requested_quantity\n"
    "DLV-1,2008-07-18,IP3G-0,100,500\n"
    "DLV-1,2008-07-18,IP3G-1,40,\n"
)


@pytest.fixture
def launch():
    return make_launch(skus=2)[0]


def problems_of(content: bytes, filename: str = "m.csv") -> list[str]:
    with pytest.raises(ManifestInvalid) as exc:
        manifest_parse(content=content, filename=filename)
    return [str(p) for p in exc.value.problems]


def test_good_csv_and_json_are_announced_once(launch):
    delivery, created = delivery_announce(manifest=manifest_parse(content=GOOD_CSV.encode()), source="test")
    assert created and delivery.launch == launch
    assert sorted(delivery.lines.values_list("sku__code", "quantity", "requested_quantity")) == [
        ("IP3G-0", 100, 500),
        ("IP3G-1", 40, None),
    ]
    again, created = delivery_announce(manifest=manifest_parse(content=GOOD_CSV.encode()), source="test")
    assert again == delivery and not created
    payload = {
        "reference": "DLV-2",
        "expected_on": "2008-07-25",
        "lines": [{"sku": "IP3G-0", "quantity": "7"}],
    }
    delivery2, created = delivery_announce(
        manifest=manifest_parse(content=json.dumps(payload).encode(), filename="m.json"), source="test"
    )
    assert created and delivery2.lines.get().quantity == 7
    assert Delivery.objects.count() == 2 and DeliveryLine.objects.count() == 3


def test_every_bad_line_is_named_and_nothing_is_written(launch):
    content = (
        b"reference,expected_on,sku,quantity\n"
        b"DLV-9,2008-07-18,IP3G-0,10\n"
        b"DLV-9,2008-07-18,NOPE,5\n"
        b"DLV-9,2008-07-18,IP3G-1,-3\n"
        b"DLV-9,2008-07-18,IP3G-1,ten\n"
        b"DLV-9,2008-07-18,IP3G-0,4\n"
    )
    problems = problems_of(content)
    assert problems == [
        "line 3: Unknown SKU 'NOPE'.",
        "line 4: quantity -3 must be at least 1.",
        "line 5: SKU IP3G-1 is already on line 4; one line per SKU.",
        "line 5: quantity 'ten' is not a whole number.",
        "line 6: SKU IP3G-0 is already on line 2; one line per SKU.",
    ]
    assert Delivery.objects.count() == 0


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (b"", "m.csv", "The file is empty."),
        (b"  \n\n", "m.csv", "The file is empty."),
        (
            "reference,expected_on,sku,quantity\nDLV-1,2008-07-18,IP3G-0,1\nDLV-1,2008-07-18,Caf\xe9,1\n".encode(
                "latin-1"
            ),
            "m.csv",
            "line 3: Not UTF-8 text",
        ),
        (b"reference,sku\nDLV,IP3G-0\n", "m.csv", "line 1: Header: missing column(s) expected_on, quantity"),
        (b"reference,expected_on,sku,quantity\n", "m.csv", "The file has a header but no lines."),
        (
            b"reference,expected_on,sku,quantity\nDLV-1,18/07/2008,IP3G-0,1\n",
            "m.csv",
            "expected_on '18/07/2008' is not a date",
        ),
        (
            b'{"reference": "X", "expected_on": "2008-07-18", "lines": [{"sku": "IP3G-0", "quantity": 1.5}]}',
            "m.json",
            "line 1: quantity 1.5 is not a whole number.",
        ),
        (
            b'{"reference": "X", "expected_on": "2008-07-18", "lines": []}',
            "m.json",
            '"lines" must be a non-empty list',
        ),
        (b'{"reference": "X", "lines": [', "m.json", "line 1: Not valid JSON"),
        (
            b'{"reference": "X", "expected_on": "2008-07-18", "lines": [{"sku": "IP3G-0", "quantity": 0}]}',
            "m.json",
            "line 1: quantity 0 must be at least 1.",
        ),
    ],
)
def test_bad_files_are_refused_with_a_clear_report(launch, content, filename, expected):
    problems = problems_of(content, filename)
    assert any(p.startswith(expected) for p in problems), problems
    assert Delivery.objects.count() == 0


def test_a_launch_that_does_not_sell_the_sku_is_refused(launch):
    make_launch(skus=0, slug="other")
    other_sku_payload = {
        "reference": "X",
        "expected_on": "2008-07-18",
        "launch": "other",
        "lines": [{"sku": "IP3G-0", "quantity": 1}],
    }
    with pytest.raises(ManifestInvalid) as exc:
        delivery_announce(manifest=manifest_parse(content=json.dumps(other_sku_payload).encode()), source="t")
    assert str(exc.value.problems[0]) == "line 1: SKU IP3G-0 is not part of launch other."
    assert Delivery.objects.count() == 0


def test_inbox_announces_good_files_once_and_rejects_bad_ones_with_a_report(launch, tmp_path):
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    (tmp_path / "bad.csv").write_text("reference,expected_on,sku,quantity\nDLV-3,2008-07-18,NOPE,1\n")
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:  # 50 MB, sparse: refused on its size, never read
        f.truncate(50 * 1024 * 1024)
    (tmp_path / "notes.txt").write_text("not a manifest")
    outcomes = {o.filename: o for o in delivery_inbox_scan(inbox_dir=tmp_path)}
    assert outcomes["good.csv"].outcome == "announced"
    assert outcomes["bad.csv"].outcome == "rejected"
    assert outcomes["bad.csv"].problems == ("line 2: Unknown SKU 'NOPE'.",)
    assert outcomes["huge.json"].outcome == "rejected"
    assert "52,428,800 bytes" in outcomes["huge.json"].problems[0]
    assert "notes.txt" not in outcomes
    assert (tmp_path / "processed" / "good.csv").exists()
    assert "Unknown SKU 'NOPE'" in (tmp_path / "rejected" / "bad.csv.problems.txt").read_text()
    assert os.path.getsize(tmp_path / "rejected" / "huge.json") == 50 * 1024 * 1024
    # The same file dropped again changes nothing.
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    again = delivery_inbox_scan(inbox_dir=tmp_path)
    assert [(o.filename, o.outcome) for o in again] == [("good.csv", "duplicate")]
    assert Delivery.objects.count() == 1 and DeliveryLine.objects.count() == 2
    assert len(list((tmp_path / "processed").iterdir())) == 2
    assert StockMovement.objects.count() == 0
