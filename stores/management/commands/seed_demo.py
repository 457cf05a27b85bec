"""Demo data for Launchday (API.md, "Demo data").

Fast enough for 50,000 customers in seconds: customers and registrations go in with
bulk_create in batches, stock rows and their ledger receipts are written in bulk (each
level equals the sum of its movements, as stock_apply would leave them), and passwords
are hashed once per password rather than once per user.

Stdout carries only the sign-in lines, one per sign-in, so scripts can parse them; the
progress bar and the summary go to stderr.
"""

import datetime
import random
import secrets
import string
from collections.abc import Iterator
from itertools import islice

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError, Q, QuerySet
from django.utils import timezone
from tqdm import tqdm

from customers.models import Campaign, Customer, Message, UpgradeRegistration
from inventory.models import SKU, Delivery, Launch, Location, Product, Stock, StockMovement
from orders.models import Order, PoolState, Ticket
from stores.models import Partner, PartnerAPIKey, StaffMembership, Store
from stores.services.second_factor import recovery_codes_issue

LAUNCH_SLUG = "iphone-3g"
# The story's second launch (still taking registrations) is demo data too: --reset removes it.
DEMO_LAUNCH_SLUGS = (LAUNCH_SLUG, "iphone-3g-pay-and-go")
PRODUCT_CODE = "IP3G"
# (code, name, share of registrations): the 16GB black was the one everybody wanted.
SKUS = (
    ("IP3G-8GB-BLACK", "iPhone 3G 8GB black", 0.3),
    ("IP3G-16GB-BLACK", "iPhone 3G 16GB black", 0.45),
    ("IP3G-16GB-WHITE", "iPhone 3G 16GB white", 0.25),
)
PARTNER_CODE = "cpw"
PARTNER_NAME = "Carphone Warehouse"
HEAD_OFFICE_USERNAME = "headoffice"
HEAD_OFFICE_GROUP = "Head office"
HEAD_OFFICE_APPS = ("stores", "inventory", "customers", "orders", "django_celery_beat")
UNREGISTERED = 100
# Share of registered customers who chose to collect in a store rather than home delivery.
COLLECT_SHARE = 0.6
BATCH = 5000
CUSTOMER_FIELDS = (
    "account_number",
    "name",
    "email",
    "phone",
    "postcode",
    "current_device",
    "contract_status",
)
SEED_REFERENCE = "DEMO-SEED"
TOWNS = (
    "London Oxford Street",
    "Manchester Arndale",
    "Birmingham Bullring",
    "Leeds Briggate",
    "Glasgow Buchanan Street",
    "Liverpool One",
    "Bristol Broadmead",
    "Edinburgh Princes Street",
    "Cardiff Queen Street",
    "Newcastle Eldon Square",
    "Sheffield Meadowhall",
    "Nottingham Victoria",
    "Leicester Highcross",
    "Southampton WestQuay",
    "Brighton Churchill Square",
    "Reading Oracle",
    "Belfast Donegall Place",
    "Aberdeen Union Square",
    "Cambridge Grand Arcade",
    "Oxford Westgate",
)
REGIONS = ("London", "North West", "Midlands", "Yorkshire", "Scotland", "South West", "Wales", "North East")
FIRST_NAMES = (
    "Oliver",
    "Amelia",
    "Jack",
    "Olivia",
    "Harry",
    "Emily",
    "George",
    "Isla",
    "Charlie",
    "Ava",
    "Thomas",
    "Jessica",
    "James",
    "Lily",
    "William",
    "Sophie",
    "Daniel",
    "Grace",
    "Samuel",
    "Chloe",
)
SURNAMES = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
)
POSTCODE_AREAS = ("SW1A", "EC1A", "M1", "B1", "LS1", "G1", "L1", "BS1", "EH1", "CF10", "NE1", "S1")


def demo_account_numbers_q() -> Q:
    return Q(account_number__regex=r"^[DN][0-9]{7}$")


def random_password(length: int) -> str:
    # Letters and digits only, so the printed line splits on spaces and pastes into a shell.
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def wipe(queryset: QuerySet) -> None:
    """Delete the rows of a big demo table.

    On PostgreSQL in one DELETE, without Django's collector loading every row to look for
    dependants: reset deletes children first, and the database's own foreign keys still
    refuse (at commit) to delete anything a row outside the demo refers to.
    """
    if connection.vendor == "postgresql":
        queryset._raw_delete(queryset.db)
    else:
        queryset.delete()


def batched(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(islice(items, size)):
        yield chunk


class Command(BaseCommand):
    help = "Seed the demo launch, stores, staff, stock, customers and a partner key; print the sign-ins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=5000, help="registered customers (default 5000)")
        parser.add_argument(
            "--online-units", type=int, default=200, help="units per SKU in the online pool (default 200)"
        )
        parser.add_argument(
            "--store-units", type=int, default=12, help="units per SKU per store (default 12)"
        )
        parser.add_argument("--stores", type=int, default=20, help="stores (default 20)")
        parser.add_argument("--reset", action="store_true", help="empty the demo data first")
        parser.add_argument("--seed", type=int, default=2008, help="random seed (default 2008)")
        parser.add_argument(
            "--story",
            action="store_true",
            help="also an hour of the launch already lived: orders, waitlist, collect orders, walk-ins, "
            "a delivery with a draft plan, a sent apology, a second launch open for registration",
        )

    def handle(self, *args, **options) -> None:
        customers: int = options["customers"]
        stores: int = options["stores"]
        online_units: int = options["online_units"]
        store_units: int = options["store_units"]
        if customers < 0 or online_units < 0 or store_units < 0:
            raise CommandError("--customers, --online-units and --store-units must not be negative.")
        if customers > 9_999_999:
            raise CommandError("--customers must fit in seven digits (at most 9,999,999).")
        if not 1 <= stores <= 999:
            raise CommandError("--stores must be between 1 and 999.")
        self.rng = random.Random(options["seed"])
        self.verbosity = options["verbosity"]

        started = timezone.now()
        if options["reset"]:
            self.reset()
        elif (
            Launch.objects.filter(slug__in=DEMO_LAUNCH_SLUGS).exists()
            or Partner.objects.filter(code=PARTNER_CODE).exists()
        ):
            raise CommandError("Demo data already exists; run seed_demo --reset to replace it.")

        with transaction.atomic():
            launch, skus = self.seed_launch()
            partner = Partner.objects.create(code=PARTNER_CODE, name=PARTNER_NAME, kind=Partner.Kind.RETAILER)
            store_list = self.seed_stores(count=stores, partner=partner)
            self.seed_stock(stores=store_list, skus=skus, online_units=online_units, store_units=store_units)
            self.seed_customers(count=customers, launch=launch, skus=skus, stores=store_list)
            sign_ins = self.seed_users(stores=store_list)
            _, api_key = PartnerAPIKey.objects.create_key(
                name=f"{PARTNER_CODE} demo key", partner=partner, scope=PartnerAPIKey.Scope.ORDERS
            )

        self.warm_eligibility(launch=launch)
        if options["story"]:
            self.tell_story(launch=launch, skus=skus, stores=store_list, partner=partner, options=options)

        self.stdout.write(f"partner {PARTNER_CODE} {api_key}")
        for line in sign_ins:
            self.stdout.write(line)
        seconds = (timezone.now() - started).total_seconds()
        if self.verbosity:
            self.stderr.write(
                f"Seeded launch {LAUNCH_SLUG}: {customers} registered and {UNREGISTERED} unregistered "
                f"customers, {stores} stores, {online_units} online and {store_units} per-store units per "
                f"SKU in {seconds:.1f}s."
            )

    def tell_story(self, *, launch, skus, stores, partner, options) -> None:
        from stores.management.commands._story import Story

        memberships = StaffMembership.objects.filter(store__in=stores).select_related("user")
        story = Story(
            launch=launch,
            skus=skus,
            stores=stores,
            partner=partner,
            staff_by_store={m.store_id: m.user for m in memberships},
            head_office=get_user_model().objects.get(username=HEAD_OFFICE_USERNAME),
            online_units=options["online_units"],
            store_units=options["store_units"],
            rng=random.Random(options["seed"] + 1),
        )
        summary = story.run()
        if self.verbosity:
            for line in summary.lines():
                self.stderr.write(line)

    # --- reset ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Delete the demo's rows, children first, so PROTECT foreign keys never object."""
        launches = list(Launch.objects.filter(slug__in=DEMO_LAUNCH_SLUGS))
        demo_customers = Customer.objects.filter(demo_account_numbers_q())
        demo_stores = Store.objects.filter(code__regex=r"^S[0-9]{3}$")
        demo_skus = SKU.objects.filter(product__code=PRODUCT_CODE)
        demo_users = get_user_model().objects.filter(
            Q(username=HEAD_OFFICE_USERNAME) | Q(username__regex=r"^staff-s[0-9]{3}$")
        )
        by_launch = Q(launch__in=launches)
        try:
            with transaction.atomic():
                wipe(Message.objects.filter(by_launch | Q(customer__in=demo_customers)))
                Campaign.objects.filter(by_launch).delete()
                Ticket.objects.filter(by_launch | Q(store__in=demo_stores)).delete()
                wipe(
                    Order.objects.filter(
                        by_launch
                        | Q(customer__in=demo_customers)
                        | Q(store__in=demo_stores)
                        | Q(sku__in=demo_skus)
                    )
                )
                PoolState.objects.filter(by_launch | Q(sku__in=demo_skus)).delete()
                wipe(UpgradeRegistration.objects.filter(by_launch | Q(customer__in=demo_customers)))
                Delivery.objects.filter(by_launch | Q(lines__sku__in=demo_skus)).distinct().delete()
                for launch in launches:
                    launch.delete()
                store_locations = Location.objects.filter(store__in=demo_stores)
                wipe(StockMovement.objects.filter(Q(sku__in=demo_skus) | Q(location__in=store_locations)))
                Stock.objects.filter(Q(sku__in=demo_skus) | Q(location__in=store_locations)).delete()
                store_locations.delete()
                StaffMembership.objects.filter(Q(store__in=demo_stores) | Q(user__in=demo_users)).delete()
                demo_users.delete()
                demo_stores.delete()
                Partner.objects.filter(code=PARTNER_CODE).delete()
                wipe(demo_customers)
                demo_skus.delete()
                Product.objects.filter(code=PRODUCT_CODE).delete()
        except (ProtectedError, IntegrityError) as exc:
            raise CommandError(
                f"Cannot reset: rows outside the demo still refer to demo data ({exc.args[0]})."
            ) from exc

    # --- seeding --------------------------------------------------------------------------

    def seed_launch(self) -> tuple[Launch, list[SKU]]:
        product = Product.objects.create(code=PRODUCT_CODE, name="iPhone 3G")
        SKU.objects.bulk_create([SKU(code=code, name=name, product=product) for code, name, _ in SKUS])
        skus = list(SKU.objects.filter(product=product).order_by("code"))
        opens_at = timezone.now() - datetime.timedelta(hours=1)
        launch = Launch.objects.create(
            slug=LAUNCH_SLUG,
            name="iPhone 3G",
            opens_at=opens_at,
            closes_at=opens_at + datetime.timedelta(days=7),
            per_customer_limit=1,
        )
        launch.skus.set(skus)
        return launch, skus

    def seed_stores(self, *, count: int, partner: Partner) -> list[Store]:
        # The first half are the operator's own; the second half the partner's.
        own = (count + 1) // 2
        stores = [
            Store(
                code=f"S{i:03d}",
                name=TOWNS[(i - 1) % len(TOWNS)] + ("" if i <= len(TOWNS) else f" {i}"),
                partner=None if i <= own else partner,
                region=REGIONS[(i - 1) % len(REGIONS)],
                opens_at_launch=datetime.time(8, 2),
            )
            for i in range(1, count + 1)
        ]
        Store.objects.bulk_create(stores)
        stores = list(Store.objects.filter(code__in=[s.code for s in stores]).order_by("code"))
        Location.objects.bulk_create(
            [Location(code=s.code, kind=Location.Kind.STORE, store=s) for s in stores]
        )
        return stores

    def seed_stock(
        self, *, stores: list[Store], skus: list[SKU], online_units: int, store_units: int
    ) -> None:
        """Receipts into the online pool and every store: levels and ledger written together."""
        online = Location.objects.get_or_create(code="ONLINE", defaults={"kind": Location.Kind.ONLINE})[0]
        Location.objects.get_or_create(code="CENTRAL", defaults={"kind": Location.Kind.CENTRAL})
        locations = {loc.store_id: loc for loc in Location.objects.filter(store__in=stores)}
        targets = [(online, online_units)] + [(locations[s.pk], store_units) for s in stores]
        stock_rows, movements = [], []
        for location, units in targets:
            for sku in skus:
                stock_rows.append(Stock(location=location, sku=sku, on_hand=units))
                if units:
                    movements.append(
                        StockMovement(
                            location=location,
                            sku=sku,
                            kind=StockMovement.Kind.RECEIPT,
                            on_hand_delta=units,
                            reference=SEED_REFERENCE,
                            reason="Demo opening stock",
                        )
                    )
        Stock.objects.bulk_create(stock_rows, batch_size=BATCH)
        StockMovement.objects.bulk_create(movements, batch_size=BATCH)

    def _customer_values(self, account_number: str, status: str) -> tuple:
        """(account number, name, email, phone, postcode, device, status) of one demo customer."""
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        return (
            account_number,
            f"{first} {last}",
            f"{account_number.lower()}@customers.launchday.example",
            f"07700 9{rng.randrange(100000):05d}",
            f"{rng.choice(POSTCODE_AREAS)} {rng.randrange(1, 10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
            "iPhone (original)",
            status,
        )

    def _customer(self, account_number: str, status: str) -> Customer:
        values = self._customer_values(account_number, status)
        return Customer(**dict(zip(CUSTOMER_FIELDS, values, strict=True)))

    def seed_customers(self, *, count: int, launch: Launch, skus: list[SKU], stores: list[Store]) -> None:
        """D-customers registered and eligible; N-customers known but never registered."""
        rng = self.rng
        weights = [share for _, _, share in SKUS]
        sku_by_code = {s.code: s for s in skus}
        sku_choices = [sku_by_code[code] for code, _, _ in SKUS]
        accounts = (f"D{i:07d}" for i in range(1, count + 1))
        if connection.vendor == "postgresql":
            insert, register = self._insert_copy, self._register_copy
        else:
            insert, register = self._insert_orm, self._register_orm
        # tqdm writes carriage returns; Django's OutputWrapper would add a newline to each
        # write, so the bar goes to the stream it wraps (sys.stderr unless redirected).
        with tqdm(
            total=count, unit="customer", desc="customers", file=self.stderr._out, disable=self.verbosity == 0
        ) as bar:
            for chunk in batched(accounts, BATCH):
                customers = [self._customer_values(a, Customer.ContractStatus.UPGRADE_DUE) for a in chunk]
                ids = insert(customers)
                registrations = [
                    (
                        ids[account],
                        rng.choices(sku_choices, weights)[0].pk,
                        rng.choice(stores).pk if rng.random() < COLLECT_SHARE else None,
                    )
                    for account in chunk
                ]
                register(registrations, launch=launch)
                bar.update(len(chunk))
        Customer.objects.bulk_create(
            [self._customer(f"N{i:07d}", Customer.ContractStatus.ACTIVE) for i in range(1, UNREGISTERED + 1)]
        )

    def _insert_orm(self, rows: list[tuple]) -> dict[str, int]:
        created = Customer.objects.bulk_create(
            [Customer(**dict(zip(CUSTOMER_FIELDS, r, strict=True))) for r in rows]
        )
        if any(c.pk is None for c in created):  # a backend that cannot return ids
            return dict(
                Customer.objects.filter(account_number__in=[r[0] for r in rows]).values_list(
                    "account_number", "pk"
                )
            )
        return {c.account_number: c.pk for c in created}

    def _insert_copy(self, rows: list[tuple]) -> dict[str, int]:
        """PostgreSQL: COPY the batch (several times faster than a multi-row INSERT), then
        read the ids it was given."""
        now = timezone.now()
        columns = ", ".join((*CUSTOMER_FIELDS, "marketing_opt_out", "created_at"))
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {Customer._meta.db_table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, False, now))
            cursor.execute(
                f"SELECT account_number, id FROM {Customer._meta.db_table} "  # noqa: S608 - names from the model
                "WHERE account_number >= %s AND account_number <= %s",
                [rows[0][0], rows[-1][0]],
            )
            return dict(cursor.fetchall())

    def _register_orm(self, rows: list[tuple], *, launch: Launch) -> None:
        UpgradeRegistration.objects.bulk_create(
            [
                UpgradeRegistration(
                    customer_id=customer_id,
                    launch=launch,
                    preferred_sku_id=sku_id,
                    preferred_store_id=store_id,
                )
                for customer_id, sku_id, store_id in rows
            ]
        )

    def _register_copy(self, rows: list[tuple], *, launch: Launch) -> None:
        now = timezone.now()
        table = UpgradeRegistration._meta.db_table
        with (
            connection.cursor() as cursor,
            cursor.copy(
                f"COPY {table} (customer_id, launch_id, preferred_sku_id, preferred_store_id, registered_at) "
                "FROM STDIN"
            ) as copy,
        ):
            for customer_id, sku_id, store_id in rows:
                copy.write_row((customer_id, launch.pk, sku_id, store_id, now))

    def seed_users(self, *, stores: list[Store]) -> list[str]:
        """One head-office user (with recovery codes for its second step) and one staff user
        per store; returns their sign-in lines.

        Hashing is deliberately slow (PBKDF2), so each password is hashed once: every store
        user shares one random staff password, head office has its own. Demo data only.
        """
        User = get_user_model()
        staff_password = random_password(12)
        head_password = random_password(16)
        staff_hash = make_password(staff_password)
        head = User.objects.create(
            username=HEAD_OFFICE_USERNAME,
            password=make_password(head_password),
            is_staff=True,
            first_name="Head",
            last_name="Office",
            email="headoffice@launchday.example",
        )
        group, _ = Group.objects.get_or_create(name=HEAD_OFFICE_GROUP)
        group.permissions.set(Permission.objects.filter(content_type__app_label__in=HEAD_OFFICE_APPS))
        head.groups.add(group)
        users = User.objects.bulk_create(
            [User(username=f"staff-{s.code.lower()}", password=staff_hash, first_name=s.name) for s in stores]
        )
        by_name = {u.username: u for u in User.objects.filter(username__in=[u.username for u in users])}
        pairs = [(by_name[f"staff-{s.code.lower()}"], s) for s in stores]
        StaffMembership.objects.bulk_create(
            [StaffMembership(user=head, store=None, role=StaffMembership.Role.HEAD_OFFICE)]
            + [StaffMembership(user=u, store=s, role=StaffMembership.Role.STAFF) for u, s in pairs]
        )
        lines = [f"staff {u.username} {staff_password} {s.code}" for u, s in pairs]
        lines.append(f"head-office {HEAD_OFFICE_USERNAME} {head_password}")
        # Head office's second step (django-otp): single-use recovery codes, so the demo can
        # be tried without an authenticator app (it can be set up after the first sign-in).
        codes = recovery_codes_issue(user=head)
        lines.append(f"head-office-codes {HEAD_OFFICE_USERNAME} {' '.join(codes)}")
        return lines

    def warm_eligibility(self, *, launch: Launch) -> None:
        """Fill the admission path's eligibility cache, once that service exists."""
        from customers.services import registration

        warm = getattr(registration, "eligibility_cache_warm", None)
        if warm is not None:
            warm(launch=launch)
