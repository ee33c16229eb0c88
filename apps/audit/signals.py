"""Sign-ins, sign-outs, failed sign-ins and MFA changes.

Django's and allauth's signals are the only hook these have; every other row is
written explicitly by the service that makes the change.
"""

from django.apps import apps as django_apps
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from apps.audit.constants import Outcome, Via
from apps.audit.services import audit_record


def _via(request) -> str:
    path = getattr(request, "path", "") or ""
    return Via.ADMIN if path.startswith("/admin/") else Via.WEB


def _logged_in(sender, request, user, **kwargs):
    audit_record(actor=user, via=_via(request), verb="auth.login", obj=user, request=request)


def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(actor=user, via=_via(request), verb="auth.logout", obj=user, request=request)


def _login_failed(sender, credentials, request=None, **kwargs):
    # Only the name that was tried: Django has masked the password already, and it
    # is not kept in any form.
    tried = str(credentials.get("username") or credentials.get("email") or "")
    audit_record(
        actor=None,
        actor_name=tried,
        via=_via(request),
        verb="auth.login_failed",
        outcome=Outcome.REFUSED,
        details={"tried": tried[:150]},
        request=request,
    )


def _password(verb: str):
    def receiver(sender, request, user, **kwargs):
        audit_record(actor=user, via=_via(request), verb=verb, obj=user, request=request)

    return receiver


def _mfa(verb: str, outcome: str = Outcome.SUCCESS):
    def receiver(sender, request, user, authenticator=None, **kwargs):
        audit_record(
            actor=user,
            via=_via(request),
            verb=verb,
            obj=user,
            outcome=outcome,
            details={"authenticator": getattr(authenticator, "type", "")},
            request=request,
        )

    return receiver


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    user_logged_out.connect(_logged_out, dispatch_uid="audit-logout")
    user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")
    # Installed under a config of ours (apps.accounts.apps.SignInEmailsConfig): ask by name.
    if django_apps.is_installed("allauth.account"):
        from allauth.account import signals as account

        for signal, verb in (
            (account.password_changed, "auth.password_change"),
            (account.password_set, "auth.password_set"),
            (account.password_reset, "auth.password_reset"),
        ):
            signal.connect(_password(verb), dispatch_uid=f"audit-{verb}", weak=False)
    if django_apps.is_installed("allauth.mfa"):
        from allauth.mfa import signals as mfa

        mfa.authenticator_added.connect(_mfa("mfa.add"), dispatch_uid="audit-mfa-add", weak=False)
        mfa.authenticator_removed.connect(
            _mfa("mfa.remove"), dispatch_uid="audit-mfa-remove", weak=False
        )
        mfa.authenticator_reset.connect(
            _mfa("mfa.reset"), dispatch_uid="audit-mfa-reset", weak=False
        )
        mfa.authentication_failed.connect(
            _mfa("mfa.failed", Outcome.REFUSED), dispatch_uid="audit-mfa-failed", weak=False
        )
