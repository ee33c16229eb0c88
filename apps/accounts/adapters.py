from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings

from apps.accounts.services import teams_sync_from_sso


class ClosedSignupAdapter(DefaultAccountAdapter):
    """Users are created by Ops (or SSO), never by signing up."""

    def is_open_for_signup(self, request):
        return False


class SsoAdapter(DefaultSocialAccountAdapter):
    """Single sign-on creates the user at their first sign-in (password sign-up stays closed)."""

    def is_open_for_signup(self, request, sociallogin):
        return True


def sso_groups(sociallogin) -> list[str]:
    """The groups the identity provider sent (OIDC_GROUPS_CLAIM, from userinfo or the ID
    token). No claim means no group: a membership the provider does not confirm ends."""
    claim = settings.OIDC_GROUPS_CLAIM
    data = sociallogin.account.extra_data or {}
    for part in (data.get("userinfo"), data.get("id_token"), data):
        if isinstance(part, dict) and claim in part:
            value = part[claim]
            if isinstance(value, str):
                return [value]
            if isinstance(value, list | tuple):
                return [str(group) for group in value]
            return []
    return []


def sso_login_received(sender, request, user, sociallogin=None, **kwargs):
    """At each single sign-on, the user's SSO-mapped teams follow their groups."""
    if sociallogin is not None:
        teams_sync_from_sso(user=user, groups=sso_groups(sociallogin), request=request)
