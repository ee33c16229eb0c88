from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self):
        from allauth.account.signals import user_logged_in

        from apps.accounts.adapters import sso_login_received

        # allauth's hook after a sign-in; only single sign-ons carry a `sociallogin`.
        user_logged_in.connect(sso_login_received, dispatch_uid="accounts.sso_teams")
