"""Announce the manifests in DELIVERY_INBOX_DIR (good ones to processed/, bad to rejected/)."""

from django.core.management.base import BaseCommand

from inventory.services import delivery_inbox_scan


class Command(BaseCommand):
    help = "Read supplier manifests from the inbox folder; each bad file gets a per-line report."

    def add_arguments(self, parser):
        parser.add_argument("--inbox", default=None, help="folder (default: DELIVERY_INBOX_DIR)")

    def handle(self, *args, inbox, **options):
        for outcome in delivery_inbox_scan(inbox_dir=inbox):
            self.stdout.write(f"{outcome.filename}: {outcome.outcome} {outcome.reference}".rstrip())
            for problem in outcome.problems:
                self.stdout.write(f"  {problem}")
