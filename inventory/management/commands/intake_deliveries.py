"""Take in due deliveries now, with a progress bar: receive, plan, distribute, allocate."""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from inventory.models import Delivery
from inventory.selectors import deliveries_due
from inventory.services import delivery_inbox_scan
from orders.services.intake import STEPS, delivery_intake


class Command(BaseCommand):
    help = "Scan the inbox, then take in every due delivery (or the ones named) exactly once."

    def add_arguments(self, parser):
        parser.add_argument("references", nargs="*", help="delivery references (default: every due delivery)")
        parser.add_argument("--no-inbox", action="store_true", help="do not scan DELIVERY_INBOX_DIR first")

    def handle(self, *args, references, no_inbox, **options):
        if not no_inbox:
            for outcome in delivery_inbox_scan():
                self.stdout.write(f"inbox {outcome.filename}: {outcome.outcome} {outcome.reference}")
                for problem in outcome.problems:
                    self.stdout.write(f"  {problem}")
        if references:
            ids = list(Delivery.objects.filter(reference__in=references).values_list("pk", flat=True))
            unknown = set(references) - set(
                Delivery.objects.filter(pk__in=ids).values_list("reference", flat=True)
            )
            for ref in sorted(unknown):
                self.stderr.write(f"unknown delivery {ref}")
        else:
            ids = list(deliveries_due().values_list("pk", flat=True))
        with tqdm(total=len(ids) * len(STEPS), unit="step", file=self.stderr, disable=None) as bar:
            for pk in ids:
                result = delivery_intake(delivery_id=pk, on_step=lambda name: bar.update(1))
                note = "waiting for head office to approve its plan" if result.waiting_for_approval else ""
                bar.write(
                    f"{result.reference}: received={result.received} plan={result.plan_status} "
                    f"distributed={result.distributed} allocated={result.allocated} {note}".rstrip()
                )
        self.stdout.write(f"intake_deliveries: {len(ids)} delivery(ies) processed.")
