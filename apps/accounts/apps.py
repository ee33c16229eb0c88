from allauth.account.apps import AccountConfig
from django.apps import AppConfig


class AccountsConfig(AppConfig):
    # This module holds two configs (and imports allauth's): Django takes the one marked
    # default for "apps.accounts", else none of them, and ready() below would never run.
    default = True
    name = "apps.accounts"
    label = "accounts"

    def ready(self):
        from allauth.account.signals import user_logged_in

        from apps.accounts.adapters import sso_login_received

        # allauth's hook after a sign-in; only single sign-ons carry a `sociallogin`.
        user_logged_in.connect(sso_login_received, dispatch_uid="accounts.sso_teams")


class SignInEmailsConfig(AccountConfig):
    """allauth's account app under a name of its own: it is also called "Accounts", and the
    admin's index showed two sections of that name (its e-mail addresses, and ours)."""

    default = False
    verbose_name = "Sign-in e-mail addresses"
