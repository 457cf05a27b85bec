"""Issue an API key to a partner. The key is shown once, on the last line; only its hash is kept."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from stores.models import SCOPES_BY_KIND, Partner, PartnerAPIKey


class Command(BaseCommand):
    help = "Create an API key for a partner and print it on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner_code", metavar="PARTNER_CODE")
        parser.add_argument(
            "--scope",
            choices=PartnerAPIKey.Scope.values,
            default=PartnerAPIKey.Scope.ORDERS,
            help="orders (default) or webhooks for a retail partner, deliveries for a supplier",
        )
        parser.add_argument("--name", default="", help="a label for the key (default: partner and scope)")

    def handle(self, *args, partner_code: str, scope: str, name: str, **options) -> None:
        partner = Partner.objects.filter(code=partner_code).first()
        if partner is None:
            known = ", ".join(Partner.objects.order_by("code").values_list("code", flat=True)) or "none"
            raise CommandError(f"No partner with code {partner_code!r} (known: {known}).")
        if not partner.is_active:
            raise CommandError(f"Partner {partner_code!r} is not active.")
        if scope not in SCOPES_BY_KIND.get(partner.kind, frozenset()):
            raise CommandError(
                f"{partner} is a {partner.get_kind_display().lower()}: it may hold "
                f"{' or '.join(sorted(SCOPES_BY_KIND.get(partner.kind, ()))) or 'no'} keys, not {scope}."
            )
        api_key, key = PartnerAPIKey.objects.create_key(
            name=name or f"{partner.code} {scope}", partner=partner, scope=scope
        )
        if options["verbosity"] > 0:
            self.stdout.write(f"Created key {api_key.prefix} ({scope}) for {partner}. It is shown only once:")
        self.stdout.write(key)
