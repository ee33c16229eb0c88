from allauth.account.adapter import DefaultAccountAdapter


class ClosedSignupAdapter(DefaultAccountAdapter):
    """Users are created by Ops (or SSO), never by signing up."""

    def is_open_for_signup(self, request):
        return False
