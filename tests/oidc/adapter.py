"""The test provider's claims: the usual ones, and the user's groups from groups.json."""

import json

from allauth.idp.oidc.adapter import DefaultOIDCAdapter
from django.conf import settings


class GroupsAdapter(DefaultOIDCAdapter):
    """Adds the user's groups (from groups.json, read at each sign-in) to the claims."""

    def get_claims(self, purpose, user, client, scopes, email=None, **kwargs):
        claims = super().get_claims(purpose, user, client, scopes, email=email, **kwargs)
        groups = json.loads((settings.DATA / "groups.json").read_text())
        claims["groups"] = groups.get(user.username, [])
        return claims
