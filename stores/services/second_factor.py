"""Head office's second factor (django-otp): an authenticator app (TOTP), and recovery codes.

Store staff sign in with a password; head office, who can see every store and change
plans, campaigns and stock, also proves a one-time code. These functions are the only
writers of the OTP devices.
"""

import time

from django.contrib.auth.models import User
from django.db import transaction
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key

RECOVERY_CODES = 10
AUTHENTICATOR = "Authenticator app"
RECOVERY = "Recovery codes"


def user_has_second_factor(*, user: User) -> bool:
    """Whether the user has ever set up a second factor (an authenticator, or recovery
    codes, even used up). Only a user who never had one may set one up with a password
    alone: otherwise a stolen password would enrol the thief's phone once the codes ran out."""
    return (
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or StaticDevice.objects.filter(user=user, confirmed=True).exists()
    )


def second_factor_usable(*, user: User) -> bool:
    """Whether a code can still prove the user: an authenticator, or a recovery code left."""
    return (
        TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        or StaticDevice.objects.filter(user=user, confirmed=True, token_set__isnull=False).exists()
    )


def second_factor_verify(*, user: User, token: str) -> Device | None:
    """The confirmed device that accepts this code (a recovery code is used up), or None.

    Each device throttles its own failures (django-otp's ThrottlingMixin: a growing wait
    after each wrong code), so guessing codes is slower than their 30-second life.
    """
    for device in devices_for_user(user, confirmed=True):
        if device.verify_token(token):
            return device
    return None


def totp_key_new() -> str:
    """A new authenticator secret (hex), kept in the session until a code proves it."""
    return default_key()


def totp_device_unsaved(*, user: User, key: str) -> TOTPDevice:
    """The authenticator a key describes, not yet stored: for its QR code and its check."""
    return TOTPDevice(user=user, name=AUTHENTICATOR, key=key, confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user: User, key: str, token: str) -> tuple[TOTPDevice, list[str]] | None:
    """Store the authenticator once a code from it proves the phone holds the key: it
    replaces any earlier one, and a fresh set of recovery codes is issued (returned once;
    only their hashes' use is kept). None when the code is wrong.

    Nothing is stored before the proof, so showing the set-up page writes nothing.
    """
    device = totp_device_unsaved(user=user, key=key)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if not (token.isdigit() and len(token) == device.digits and totp.verify(int(token), device.tolerance)):
        return None
    device.last_t = totp.t()
    TOTPDevice.objects.filter(user=user).delete()
    device.confirmed = True
    device.save()
    return device, recovery_codes_issue(user=user)


@transaction.atomic
def recovery_codes_issue(*, user: User, count: int = RECOVERY_CODES) -> list[str]:
    """A new set of single-use recovery codes, replacing any earlier set."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY, defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(count)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes
