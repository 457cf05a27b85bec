"""Sign-in lockout (django-axes) and head office's second factor (django-otp)."""

import datetime

import pytest
import time_machine
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from stores.models import StaffMembership
from stores.tests.factories import StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_twenty_wrong_passwords_lock_the_pair_out_until_the_cool_off(client, settings):
    user = UserFactory(username="staff-s001")
    user.set_password("right-password-1")
    user.save()
    StaffMembership.objects.create(user=user, store=StoreFactory(code="S001"))
    with time_machine.travel(datetime.datetime(2026, 7, 11, 8, 0, tzinfo=datetime.UTC), tick=False) as clock:
        for _ in range(20):
            client.post(reverse("login"), {"username": "staff-s001", "password": "wrong"})
        locked = client.post(reverse("login"), {"username": "staff-s001", "password": "right-password-1"})
        assert locked.status_code == 429
        assert "Too many failed sign-ins" in locked.content.decode()
        assert "_auth_user_id" not in client.session
        clock.shift(settings.AXES_COOLOFF_TIME + datetime.timedelta(seconds=1))
        after = client.post(reverse("login"), {"username": "staff-s001", "password": "right-password-1"})
        assert after.status_code == 302 and "_auth_user_id" in client.session


def test_head_office_without_its_second_factor_cannot_open_an_office_page(client):
    head = UserFactory(username="head", is_staff=True)
    StaffMembership.objects.create(user=head, role=StaffMembership.Role.HEAD_OFFICE)
    client.force_login(head)  # a password alone
    response = client.get(reverse("launch-list"))
    assert response.status_code == 302 and reverse("two-factor-verify") in response["Location"]
    assert client.get(reverse("two-factor-verify")).status_code == 302  # no device yet: set one up
    setup = client.get(reverse("two-factor-setup"))
    assert setup.status_code == 200 and b"<svg" in setup.content
    key = client.session["two_factor_setup_key"]
    assert client.post(reverse("two-factor-setup"), {"otp_token": "000000"}).status_code == 400
    totp = TOTP(bytes.fromhex(key))
    done = client.post(reverse("two-factor-setup"), {"otp_token": f"{totp.token():06d}"})
    assert done.status_code == 200 and b"data-recovery-codes" in done.content
    assert client.get(reverse("launch-list")).status_code == 200
    assert client.get("/admin/").status_code == 200  # django-otp's admin site lets a verified session in


def test_a_password_alone_cannot_enrol_a_new_phone_once_the_recovery_codes_are_used_up(client):
    """Head office whose every recovery code is used (and who has no authenticator) is not
    sent to set up a new one: a stolen password would enrol the thief's phone."""
    from django_otp.plugins.otp_static.models import StaticDevice

    from stores.services.second_factor import recovery_codes_issue

    head = UserFactory(username="head", is_staff=True)
    StaffMembership.objects.create(user=head, role=StaffMembership.Role.HEAD_OFFICE)
    recovery_codes_issue(user=head)
    StaticDevice.objects.get(user=head).token_set.all().delete()  # all used
    client.force_login(head)  # a password alone

    verify = client.get(reverse("two-factor-verify"))
    assert verify.status_code == 403 and b"Ask an administrator" in verify.content
    setup = client.get(reverse("two-factor-setup"))
    assert setup.status_code == 302 and reverse("two-factor-verify") in setup["Location"]
    assert client.post(reverse("two-factor-setup"), {"otp_token": "123456"}).status_code == 302
    assert client.get(reverse("launch-list")).status_code == 302
    assert not head.totpdevice_set.exists()


def test_admin_sign_in_locks_the_username_and_address_out_until_the_cool_off(client, settings):
    # /admin/ is a sign-in door too: the same (username, IP) lockout as the staff sign-in.
    devices = {}
    for username in ("ops", "ops-2"):
        user = UserFactory(username=username, is_staff=True, is_superuser=True)
        user.set_password("right-password-1")
        user.save()
        StaffMembership.objects.create(user=user, role=StaffMembership.Role.HEAD_OFFICE)
        device = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
        for n in range(3):
            device.token_set.create(token=f"{username}-code-{n}")
        devices[username] = device.persistent_id
    codes = StaticToken.objects.filter(device__user__username="ops")

    def sign_in(username, password, code="", **extra):
        data = {"username": username, "password": password, "next": "/admin/"}
        # django-otp's admin form: the device chosen and one of its codes.
        data.update({"otp_device": devices[username], "otp_token": code} if code else {})
        return client.post(reverse("admin:login"), data, **extra)

    with time_machine.travel(datetime.datetime(2026, 7, 11, 8, 0, tzinfo=datetime.UTC), tick=False) as clock:
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert sign_in("ops", "wrong").status_code == 200  # the form's error: not locked yet
        assert sign_in("ops", "wrong").status_code == 429
        locked = sign_in("ops", "right-password-1", "ops-code-0")
        assert locked.status_code == 429
        assert "Too many failed sign-ins" in locked.content.decode()
        assert "_auth_user_id" not in client.session
        assert codes.count() == 3  # refused before a recovery code was spent
        # One lockout per pair, whichever door: the staff sign-in refuses it too.
        staff_door = client.post(reverse("login"), {"username": "ops", "password": "right-password-1"})
        assert staff_door.status_code == 429
        # Not the whole address: another administrator here signs in.
        other = sign_in("ops-2", "right-password-1", "ops-2-code-0")
        assert other.status_code == 302 and other["Location"] == "/admin/"
        assert client.get("/admin/").status_code == 200
        client.logout()
        # Not the username everywhere: the same administrator from another address signs in.
        elsewhere = sign_in("ops", "right-password-1", "ops-code-0", REMOTE_ADDR="198.51.100.9")
        assert elsewhere.status_code == 302 and "_auth_user_id" in client.session
        client.logout()
        assert sign_in("ops", "right-password-1", "ops-code-1").status_code == 429
        clock.shift(settings.AXES_COOLOFF_TIME + datetime.timedelta(seconds=1))
        after = sign_in("ops", "right-password-1", "ops-code-1")
        assert after.status_code == 302 and after["Location"] == "/admin/"
        assert client.get("/admin/").status_code == 200
