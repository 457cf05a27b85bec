"""Sign-in: django-axes' lockout answer, and head office's second factor (django-otp).

Store staff sign in with a password; head office also proves a one-time code from an
authenticator app (or a recovery code) before any office page or /admin/. The devices
are written only by stores.services.second_factor.
"""

from base64 import b32encode
from urllib.parse import urlencode

import segno
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from stores.selectors import user_is_head_office
from stores.services.second_factor import (
    second_factor_usable,
    second_factor_verify,
    totp_device_confirm,
    totp_device_unsaved,
    totp_key_new,
    user_has_second_factor,
)

SETUP_KEY = "two_factor_setup_key"  # the secret being set up, in the session until proved


def signin_locked_out(request: HttpRequest, response=None, credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer once a (username, IP address) pair has failed too often (429)."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    form = AuthenticationForm(request, data=None)
    return render(
        request,
        "registration/login.html",
        {
            "form": form,
            "locked_out": (
                f"Too many failed sign-ins for this username from this address. "
                f"Wait {minutes} minutes, then try again; if you have forgotten your password, ask head office."
            ),
        },
        status=429,
    )


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return reverse("home")


class TokenForm(forms.Form):
    otp_token = forms.CharField(
        label="Code",
        max_length=16,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )

    def clean_otp_token(self) -> str:
        return "".join(self.cleaned_data["otp_token"].split())


@require_http_methods(["GET", "POST"])
@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """Head office proves a one-time code (authenticator or recovery code) once per session."""
    if not user_is_head_office(user=request.user):
        return redirect("home")
    if not user_has_second_factor(user=request.user):
        return redirect(f"{reverse('two-factor-setup')}?{urlencode({'next': _safe_next(request)})}")
    if not second_factor_usable(user=request.user):
        # Every recovery code used and no authenticator: only an administrator can reset it.
        return render(request, "registration/two_factor_verify.html", {"used_up": True}, status=403)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = second_factor_verify(user=request.user, token=form.cleaned_data["otp_token"])
        if device is not None:
            otp_login(request, device)
            return redirect(_safe_next(request))
        form.add_error("otp_token", "That code is not right, or was already used. Try the newest code.")
    return render(
        request,
        "registration/two_factor_verify.html",
        {"form": form, "next": _safe_next(request)},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: scan the code, prove one code, keep the recovery codes.

    Open to head office that has no second factor yet (the first sign-in), or that has
    proved one this session (to move to a new phone).
    """
    user = request.user
    if not user_is_head_office(user=user):
        return redirect("home")
    verified = user.is_verified()  # type: ignore[union-attr]
    if not verified and user_has_second_factor(user=user):
        return redirect(f"{reverse('two-factor-verify')}?{urlencode({'next': _safe_next(request)})}")
    key = request.session.get(SETUP_KEY)
    if not isinstance(key, str) or request.method == "GET":
        key = request.session[SETUP_KEY] = totp_key_new()
    device = totp_device_unsaved(user=user, key=key)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        confirmed = totp_device_confirm(user=user, key=key, token=form.cleaned_data["otp_token"])
        if confirmed is not None:
            totp, codes = confirmed
            del request.session[SETUP_KEY]
            otp_login(request, totp)
            return render(
                request, "registration/two_factor_codes.html", {"codes": codes, "next": _safe_next(request)}
            )
        form.add_error(
            "otp_token", "That code is not right. Check the phone's clock and try the newest code."
        )
    return render(
        request,
        "registration/two_factor_setup.html",
        {
            "form": form,
            "next": _safe_next(request),
            "secret": b32encode(device.bin_key).decode(),
            # An inline SVG: no image request, nothing for the Content-Security-Policy to allow.
            "qr_svg": mark_safe(  # noqa: S308 - segno's own SVG of our own URL
                segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#1b1f24", light="#ffffff")
            ),
        },
        status=400 if form.errors else 200,
    )
