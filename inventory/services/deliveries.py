"""Supplier deliveries: announced by manifest (API or inbox folder), received centrally.

Receiving the same manifest twice changes nothing (its reference is unique), and a
delivery is received into the central warehouse once, under a lock on its row.
"""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from inventory.manifests import Manifest, ManifestInvalid, Problem, manifest_max_bytes, manifest_parse
from inventory.models import Delivery, DeliveryLine, Launch, StockMovement
from inventory.services.stock import StockChange, location_central, stock_apply
from stores.models import Partner


class DeliveryError(Exception):
    """A delivery cannot take this step now; the message says why."""


def delivery_announce(
    *, manifest: Manifest, source: str, supplier: Partner | None = None
) -> tuple[Delivery, bool]:
    """Record an announced delivery. The same reference again changes nothing.

    Returns (delivery, created). Raises ManifestInvalid if the launch is unknown or a SKU
    is not part of it, or if another supplier's delivery has the reference (its contents
    are that supplier's business); nothing is written then.
    """
    existing = Delivery.objects.filter(reference=manifest.reference).first()
    if existing is not None:
        return _already_announced(existing, supplier=supplier), False
    launch = None
    if manifest.launch_slug:
        launch = Launch.objects.filter(slug=manifest.launch_slug).first()
        if launch is None:
            raise ManifestInvalid([Problem(None, f"Unknown launch {manifest.launch_slug!r}.")])
    else:
        # The newest launch selling the first SKU: suppliers deliver for one launch at a time.
        launch = Launch.objects.filter(skus=manifest.lines[0].sku).order_by("-opens_at").first()
    if launch is not None:
        launch_skus = set(launch.skus.values_list("pk", flat=True))
        problems = [
            Problem(line.line, f"SKU {line.sku.code} is not part of launch {launch.slug}.")
            for line in manifest.lines
            if line.sku.pk not in launch_skus
        ]
        if problems:
            raise ManifestInvalid(problems)
    with transaction.atomic():
        delivery, created = Delivery.objects.get_or_create(
            reference=manifest.reference,
            defaults={
                "launch": launch,
                "supplier": supplier,
                "expected_on": manifest.expected_on,
                "source": source[:32],
            },
        )
        if not created:
            return _already_announced(delivery, supplier=supplier), False
        if created:
            DeliveryLine.objects.bulk_create(
                [
                    DeliveryLine(
                        delivery=delivery,
                        sku=line.sku,
                        quantity=line.quantity,
                        requested_quantity=line.requested_quantity,
                    )
                    for line in manifest.lines
                ]
            )
    return delivery, created


def _already_announced(delivery: Delivery, *, supplier: Partner | None) -> Delivery:
    if supplier is not None and delivery.supplier_id != supplier.pk:
        raise ManifestInvalid(
            [
                Problem(
                    None,
                    f"Reference {delivery.reference!r} is already used by another delivery; use your own.",
                )
            ]
        )
    return delivery


@dataclass(frozen=True)
class InboxOutcome:
    filename: str
    outcome: str  # announced | duplicate | rejected
    reference: str = ""
    problems: tuple[str, ...] = ()


def _move_aside(path: Path, folder: str) -> Path | None:
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        target = target_dir / f"{path.stem}.{timezone.now():%Y%m%dT%H%M%S%f}{path.suffix}"
    try:
        path.rename(target)
    except FileNotFoundError:
        return None  # another scanner took it first
    return target


def delivery_inbox_scan(*, inbox_dir: str | Path | None = None) -> list[InboxOutcome]:
    """Announce every manifest in the inbox folder, then move it aside.

    Good and duplicate files go to processed/, bad ones to rejected/ next to a
    `.problems.txt` naming every problem by line. A crash between announcing and moving
    is harmless: the file is read again and its reference is already known.
    """
    inbox = Path(inbox_dir or settings.DELIVERY_INBOX_DIR)
    inbox.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".json")):
        try:
            size = path.stat().st_size
            if size > manifest_max_bytes():
                # Refused on its size alone: a huge file is never read into memory.
                raise ManifestInvalid(
                    [
                        Problem(
                            None,
                            f"The file is {size:,} bytes; a manifest may be at most {manifest_max_bytes():,}.",
                        )
                    ]
                )
            manifest = manifest_parse(content=path.read_bytes(), filename=path.name)
            delivery, created = delivery_announce(manifest=manifest, source="inbox")
        except FileNotFoundError:
            continue
        except ManifestInvalid as exc:
            problems = tuple(str(p) for p in exc.problems)
            moved = _move_aside(path, "rejected")
            if moved is not None:
                moved.with_name(moved.name + ".problems.txt").write_text(
                    f"{path.name} was rejected; nothing was recorded.\n" + "\n".join(problems) + "\n"
                )
            outcomes.append(InboxOutcome(path.name, "rejected", problems=problems))
            continue
        _move_aside(path, "processed")
        outcomes.append(InboxOutcome(path.name, "announced" if created else "duplicate", delivery.reference))
    return outcomes


def delivery_receive(*, delivery_id: int, user: User | None = None) -> bool:
    """Receive an announced delivery into the central warehouse. Returns False if it already was.

    The delivery row is locked and its status checked in the same transaction as the
    receipts, so two runs (or a rerun after a crash) can never receive it twice.
    """
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != Delivery.Status.ANNOUNCED:
            return False
        central = location_central()
        stock_apply(
            changes=[
                StockChange(
                    location=central,
                    sku=line.sku,
                    kind=StockMovement.Kind.RECEIPT,
                    on_hand_delta=line.quantity,
                    reason="Supplier delivery",
                    reference=delivery.reference,
                )
                for line in delivery.lines.select_related("sku")
            ],
            user=user,
        )
        delivery.status = Delivery.Status.RECEIVED
        delivery.received_at = timezone.now()
        delivery.save(update_fields=["status", "received_at"])
    return True
