"""A partner's key scopes follow its kind: retail chains order (and hear webhooks),
suppliers deliver; whoever creates the key (command, admin form, code)."""

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from stores.models import Partner, PartnerAPIKey
from stores.tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kind", "scope"),
    [
        (Partner.Kind.RETAILER, PartnerAPIKey.Scope.DELIVERIES),
        (Partner.Kind.SUPPLIER, PartnerAPIKey.Scope.ORDERS),
        (Partner.Kind.SUPPLIER, PartnerAPIKey.Scope.WEBHOOKS),
    ],
)
def test_a_key_outside_the_partners_kind_is_refused_everywhere(kind, scope):
    partner = PartnerFactory(code="p1", kind=kind)
    with pytest.raises(CommandError, match=f"not {scope}"):
        call_command("create_partner_key", "p1", "--scope", scope, stdout=StringIO())
    with pytest.raises(ValidationError):
        PartnerAPIKey(partner=partner, scope=scope, name="form").full_clean()
    with pytest.raises(ValueError):
        PartnerAPIKey.objects.create_key(name="code", partner=partner, scope=scope)
    assert not PartnerAPIKey.objects.exists()


@pytest.mark.parametrize(
    ("kind", "scope"),
    [
        (Partner.Kind.RETAILER, PartnerAPIKey.Scope.ORDERS),
        (Partner.Kind.RETAILER, PartnerAPIKey.Scope.WEBHOOKS),
        (Partner.Kind.SUPPLIER, PartnerAPIKey.Scope.DELIVERIES),
    ],
)
def test_a_key_of_the_partners_kind_is_issued_and_shown_once(kind, scope):
    PartnerFactory(code="p1", kind=kind)
    out = StringIO()
    call_command("create_partner_key", "p1", "--scope", scope, stdout=out)
    key = out.getvalue().splitlines()[-1]
    issued = PartnerAPIKey.objects.get()
    assert issued.scope == scope and issued.is_valid(key)
    assert key not in str(issued.hashed_key)
