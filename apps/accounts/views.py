from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts import selectors, services
from apps.accounts.forms import TokenForm
from apps.accounts.permissions import environment_filter, mfa_recently_confirmed
from apps.audit.constants import Via


def refusal_page(request, reason: str, *, status: int = 403):
    """The page that says why not. The caller has recorded the refusal."""
    return render(request, "accounts/refused.html", {"reason": reason}, status=status)


def permission_denied(request, exception=None):
    """handler403: every refused page says why, and the refusal is kept in the audit log."""
    reason = str(exception or "").strip() or "You do not have permission to open this page."
    services.refusal_record(user=request.user, reason=reason, request=request, via=Via.WEB)
    return refusal_page(request, reason)


def _mfa_enabled(user) -> bool:
    from allauth.mfa.utils import is_mfa_enabled

    return is_mfa_enabled(user)


def _profile(request, *, form=None, new_key: str = "", new_token=None, status: int = 200):
    environments = selectors.environment_list().filter(environment_filter(request.user))
    return render(
        request,
        "accounts/profile.html",
        {
            "teams": selectors.team_list(user=request.user),
            "grants": selectors.grant_list(user=request.user),
            "mfa_enabled": _mfa_enabled(request.user),
            "tokens": selectors.token_list(user=request.user),
            "form": form or TokenForm(environments=environments),
            "new_key": new_key,
            "new_token": new_token,
            "mfa_environments": selectors.environment_list().filter(require_mfa=True),
        },
        status=status,
    )


@login_required
def profile(request):
    """Who I am, what my teams may do where, two-factor authentication and my API tokens."""
    return _profile(request)


@login_required
@require_POST
def token_create(request):
    environments = selectors.environment_list().filter(environment_filter(request.user))
    form = TokenForm(data=request.POST, environments=environments)
    if not form.is_valid():
        return _profile(request, form=form, status=400)
    # A token limited to such an environment runs there without a code: making one asks
    # for as much as running there from the portal does.
    if (
        mfa_names := [e.name for e in form.cleaned_data["environments"] if e.require_mfa]
    ) and not mfa_recently_confirmed(request, request.user):
        form.add_error(
            "environments",
            f"{', '.join(mfa_names)} requires two-factor authentication: set up an "
            "authenticator app, then confirm a code of it (it lasts a few minutes) "
            f"at {reverse('mfa_reauthenticate')}?next={reverse('accounts:profile')} "
            "before you make a token for it.",
        )
        return _profile(request, form=form, status=400)
    try:
        token, key = services.token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            environments=form.cleaned_data["environments"],
            expires_at=form.expires_at,
            acting_user=request.user,
            via=Via.WEB,
            request=request,
        )
    except ValidationError as exc:
        for name, errors in exc.message_dict.items():
            target = "expires_on" if name == "expires_at" else name
            for error in errors:
                form.add_error(target if target in form.fields else None, error)
        return _profile(request, form=form, status=400)
    # Rendered, not redirected: the key is shown in this answer and kept nowhere.
    return _profile(request, new_key=key, new_token=token, status=201)


@login_required
@require_POST
def token_revoke(request, token_id):
    token = selectors.token_get(user=request.user, token_id=token_id)
    if token is None:
        raise Http404("No such token.")
    services.token_revoke(token=token, acting_user=request.user, via=Via.WEB, request=request)
    messages.success(request, f"Token {token} revoked.")
    return redirect("accounts:profile")
