"""Supplier delivery manifests: read a CSV or JSON file and validate it whole.

A manifest is all or nothing: every problem is collected with the line it is on, and if
there is any, nothing is written. Line numbers are those a person sees in the file: for
CSV the physical line (the header is line 1), for JSON the position in "lines" (1 = first).

CSV: a header row with `reference,expected_on,sku,quantity` and optionally
`requested_quantity` and `launch`; every row repeats the delivery's reference and date.
JSON: `{"reference", "expected_on", "launch"?, "lines": [{"sku", "quantity",
"requested_quantity"?}]}`.
"""

import contextlib
import csv
import datetime
import io
import re
from dataclasses import dataclass, field

import orjson
from django.conf import settings

from config.shapes import DELIVERY_REFERENCE, SKU_CODE, SLUG
from inventory.models import SKU

REQUIRED_COLUMNS = ("reference", "expected_on", "sku", "quantity")
OPTIONAL_COLUMNS = ("requested_quantity", "launch")
MAX_LINES = 10_000
MAX_QUANTITY = 10_000_000
_REFERENCE = re.compile(DELIVERY_REFERENCE)
_SKU = re.compile(SKU_CODE)
_SLUG = re.compile(SLUG)


@dataclass(frozen=True)
class Problem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class ManifestInvalid(Exception):
    """The manifest has problems; `problems` names every one, by line."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(str(p) for p in problems[:5]))
        self.problems = problems

    def as_details(self) -> dict[str, list[str]]:
        """Problems grouped by line, for the API's validation_error envelope."""
        details: dict[str, list[str]] = {}
        for p in self.problems:
            details.setdefault(f"line {p.line}" if p.line is not None else "file", []).append(p.message)
        return details


@dataclass(frozen=True)
class ManifestLine:
    line: int
    sku: SKU
    quantity: int
    requested_quantity: int | None = None


@dataclass(frozen=True)
class Manifest:
    reference: str
    expected_on: datetime.date
    launch_slug: str | None
    lines: list[ManifestLine] = field(default_factory=list)


@dataclass
class _RawLine:
    line: int
    sku: object
    quantity: object
    requested_quantity: object = None


def manifest_max_bytes() -> int:
    return settings.DELIVERY_MANIFEST_MAX_BYTES


def manifest_parse(*, content: bytes, filename: str = "", content_type: str = "") -> Manifest:
    """Decode, parse and validate a manifest. Raises ManifestInvalid naming every problem."""
    if len(content) > manifest_max_bytes():
        raise ManifestInvalid(
            [
                Problem(
                    None,
                    f"The file is {len(content):,} bytes; a manifest may be at most {manifest_max_bytes():,}.",
                )
            ]
        )
    if not content.strip():
        raise ManifestInvalid([Problem(None, "The file is empty.")])
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise ManifestInvalid(
            [
                Problem(
                    line,
                    f"Not UTF-8 text: byte 0x{content[exc.start]:02x} cannot be read; save the file as UTF-8.",
                )
            ]
        ) from None
    if "\x00" in text:
        raise ManifestInvalid(
            [Problem(text[: text.index("\x00")].count("\n") + 1, "The file contains a NUL byte.")]
        )
    is_json = (
        filename.lower().endswith(".json") or "json" in content_type or text.lstrip().startswith(("{", "["))
    )
    header, raw_lines, problems = _read_json(text) if is_json else _read_csv(text)
    return _validate(header, raw_lines, problems)


def _read_json(text: str) -> tuple[dict, list[_RawLine], list[Problem]]:
    # orjson refuses what would crash or mislead a parser: lone surrogates, nesting over
    # 1,024 deep, numbers too big for a double (a 5,000-digit quantity); its message says
    # where. A NUL written as \u0000 inside a string fails the shape of its field.
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ManifestInvalid([Problem(exc.lineno, f"Not valid JSON: {exc.msg}.")]) from None
    if not isinstance(data, dict):
        raise ManifestInvalid(
            [Problem(None, "The manifest must be a JSON object with reference, expected_on and lines.")]
        )
    lines = data.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ManifestInvalid([Problem(None, '"lines" must be a non-empty list of {"sku", "quantity"}.')])
    if len(lines) > MAX_LINES:
        raise ManifestInvalid([Problem(None, f"A manifest may have at most {MAX_LINES:,} lines.")])
    problems: list[Problem] = []
    raw = []
    for i, item in enumerate(lines, start=1):
        if not isinstance(item, dict):
            problems.append(Problem(i, 'Each line must be an object with "sku" and "quantity".'))
            continue
        raw.append(_RawLine(i, item.get("sku"), item.get("quantity"), item.get("requested_quantity")))
    header = {k: data.get(k) for k in ("reference", "expected_on", "launch")}
    return header, raw, problems


def _read_csv(text: str) -> tuple[dict, list[_RawLine], list[Problem]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        columns = [c.strip().lower() for c in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise ManifestInvalid([Problem(1, f"Cannot read the header row: {exc}.")]) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise ManifestInvalid(
            [
                Problem(
                    1,
                    f"Header: {'; '.join(parts)}. Expected {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}.",
                )
            ]
        )
    problems: list[Problem] = []
    raw: list[_RawLine] = []
    header: dict[str, object] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(raw) >= MAX_LINES:
                raise ManifestInvalid([Problem(line, f"A manifest may have at most {MAX_LINES:,} lines.")])
            if len(row) != len(columns):
                problems.append(Problem(line, f"Expected {len(columns)} fields, found {len(row)}."))
                continue
            values = {c: v.strip() for c, v in zip(columns, row, strict=True)}
            for key in ("reference", "expected_on", "launch"):
                value = values.get(key) or None
                if key not in header:
                    header[key] = value
                elif value != header[key]:
                    problems.append(
                        Problem(
                            line,
                            f"{key} is {value!r} but earlier lines say {header[key]!r}; one delivery per file.",
                        )
                    )
            raw.append(
                _RawLine(line, values["sku"], values["quantity"], values.get("requested_quantity") or None)
            )
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, f"Cannot read the line: {exc}."))
    if not raw and not problems:
        raise ManifestInvalid([Problem(None, "The file has a header but no lines.")])
    return header, raw, problems


def _as_quantity(value: object, *, name: str, line: int, problems: list[Problem], minimum: int) -> int | None:
    if isinstance(value, bool) or value is None or value == "":
        problems.append(Problem(line, f"{name} is missing."))
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            problems.append(Problem(line, f"{name} {value!r} is not a whole number."))
            return None
    if not isinstance(value, int):
        problems.append(Problem(line, f"{name} {value!r} is not a whole number."))
        return None
    if value < minimum:
        problems.append(Problem(line, f"{name} {value} must be at least {minimum}."))
        return None
    if value > MAX_QUANTITY:
        problems.append(Problem(line, f"{name} {value} is more than {MAX_QUANTITY:,}."))
        return None
    return value


def _validate(header: dict, raw_lines: list[_RawLine], problems: list[Problem]) -> Manifest:
    reference = header.get("reference")
    if not isinstance(reference, str) or not reference.strip():
        problems.insert(0, Problem(None, "reference is missing."))
        reference = ""
    elif not _REFERENCE.fullmatch(reference.strip()):
        # The reference names the delivery in head office's addresses and the ledger.
        problems.insert(
            0,
            Problem(
                None,
                "reference must be 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                "letter or digit.",
            ),
        )
    reference = reference.strip()
    expected_on = None
    raw_date = header.get("expected_on")
    with contextlib.suppress(ValueError):
        expected_on = datetime.date.fromisoformat(str(raw_date).strip()) if raw_date else None
    if expected_on is None:
        problems.insert(0, Problem(None, f"expected_on {raw_date!r} is not a date (YYYY-MM-DD)."))
    launch = header.get("launch")
    if launch is not None and not (isinstance(launch, str) and _SLUG.fullmatch(launch)):
        problems.insert(0, Problem(None, "launch must be a launch's slug."))
        launch = None

    codes = {r.sku.strip() for r in raw_lines if isinstance(r.sku, str) and _SKU.fullmatch(r.sku.strip())}
    skus = {s.code: s for s in SKU.objects.filter(code__in=codes)}
    seen: dict[str, int] = {}
    lines: list[ManifestLine] = []
    for r in raw_lines:
        sku = None
        if not isinstance(r.sku, str) or not r.sku.strip():
            problems.append(Problem(r.line, "sku is missing."))
        else:
            code = r.sku.strip()
            if code in seen:
                problems.append(
                    Problem(r.line, f"SKU {code} is already on line {seen[code]}; one line per SKU.")
                )
            else:
                seen[code] = r.line
                sku = skus.get(code)
                if sku is None and not _SKU.fullmatch(code):
                    problems.append(
                        Problem(r.line, "sku must be a SKU code: letters, digits, '.', '_', '-'.")
                    )
                elif sku is None:
                    problems.append(Problem(r.line, f"Unknown SKU {code!r}."))
        quantity = _as_quantity(r.quantity, name="quantity", line=r.line, problems=problems, minimum=1)
        requested = None
        if r.requested_quantity is not None:
            requested = _as_quantity(
                r.requested_quantity, name="requested_quantity", line=r.line, problems=problems, minimum=0
            )
        if sku is not None and quantity is not None:
            lines.append(ManifestLine(r.line, sku, quantity, requested))
    # A missing date is always one of the problems; naming it here lets the checker see it too.
    if problems or expected_on is None:
        raise ManifestInvalid(sorted(problems, key=lambda p: p.line or 0))
    return Manifest(reference=reference, expected_on=expected_on, launch_slug=launch, lines=lines)
