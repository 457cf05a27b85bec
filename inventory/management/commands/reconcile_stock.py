"""Prove the ledger: for every location and SKU, Stock level == sum of StockMovements."""

from django.core.management.base import BaseCommand, CommandError

from inventory.services import stock_reconcile


class Command(BaseCommand):
    help = "Check every stock level against the sum of its ledger movements; exit 1 on drift."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=20, help="movements to show per drifting stock row")

    def handle(self, *args, rows: int, **options):
        drifts = stock_reconcile(movements_per_drift=rows)
        if not drifts:
            self.stdout.write("reconcile_stock: 0 drift: every stock level equals the sum of its movements.")
            return
        for d in drifts:
            self.stdout.write(
                f"DRIFT {d.location_code} {d.sku_code}: level on_hand/reserved/in_transit={d.level} "
                f"ledger={d.ledger} difference={tuple(a - b for a, b in zip(d.level, d.ledger, strict=True))}"
            )
            for m in d.movements:
                self.stdout.write(
                    f"  #{m.pk} {m.created_at:%Y-%m-%d %H:%M:%S} {m.kind} on_hand{m.on_hand_delta:+d} "
                    f"reserved{m.reserved_delta:+d} in_transit{m.in_transit_delta:+d} ref={m.reference!r} "
                    f"by={m.created_by_id} why={m.reason!r}"
                )
        raise CommandError(f"reconcile_stock: {len(drifts)} stock row(s) drift from the ledger.")
