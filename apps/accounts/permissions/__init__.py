"""Who may do what: one function per question, used by pages, the API, services and list queries.

The rules, all of them here:

- Superusers may do everything. Ops and auditors see every service, environment and
  run. Auditors run and cancel nothing, and change nothing. Ops cancel any run and
  curate the catalog in the admin (`role_permissions`); they run only through grants,
  like everyone else.
- Anyone runs an action on an environment only through a `run` grant of one of their
  teams on that environment, for that service or for every service. A grant on one
  environment never implies another: test or QA never implies production.
- A service is seen on an environment through a `view` or `run` grant there, or by the
  members of the team that owns it (on every environment). Its runs are seen with it.
- Through the API the token narrows its user's rights: its scopes and its
  environments. A token never grants more than its user has.
- An environment that requires two-factor authentication: in the portal, the user has
  an authenticator app and confirmed a code in the last few minutes; through the API,
  the token is limited to that environment (so it was made for it on purpose): made on
  the profile page after a recent confirmation, by Ops for a user who has an
  authenticator app, or with a token already limited to it.
- Ops create and revoke anyone's API tokens (e.g. for service accounts) but a superuser's.

What a user may do is read once per user object (that is, once per request) and kept on it
(`access`). The questions, by subject: `running` (see a service, run an action, see or
cancel a run), `locks` (locks and freeze windows), `roles` (the audit log, others' tokens,
the admin), `lists` (filters for list queries). Import them from here.
"""

from apps.accounts.permissions.access import access_forget, mfa_enabled
from apps.accounts.permissions.lists import (
    environment_filter,
    mine_filter,
    run_filter,
    service_filter,
)
from apps.accounts.permissions.locks import (
    can_lock,
    can_override_freeze,
    can_unlock,
    lock_refusal_reason,
    unlock_refusal_reason,
)
from apps.accounts.permissions.roles import (
    OPS_CURATED_APPS,
    PORTAL_APPS,
    can_manage_tokens_of,
    can_read_audit,
    can_see_workers,
    role_permissions,
    token_scope_refusal,
)
from apps.accounts.permissions.running import (
    can_cancel_run,
    can_run,
    can_view,
    can_view_run,
    can_view_service,
    cancel_refusal_reason,
    mfa_recently_confirmed,
    mfa_setup_reason,
    reauthentication_reason,
    refusal_reason,
    run_view_refusal,
)

__all__ = [
    "OPS_CURATED_APPS",
    "PORTAL_APPS",
    "access_forget",
    "can_cancel_run",
    "can_lock",
    "can_manage_tokens_of",
    "can_override_freeze",
    "can_read_audit",
    "can_run",
    "can_see_workers",
    "can_unlock",
    "can_view",
    "can_view_run",
    "can_view_service",
    "cancel_refusal_reason",
    "environment_filter",
    "lock_refusal_reason",
    "mfa_enabled",
    "mfa_recently_confirmed",
    "mfa_setup_reason",
    "mine_filter",
    "reauthentication_reason",
    "refusal_reason",
    "role_permissions",
    "run_filter",
    "run_view_refusal",
    "service_filter",
    "token_scope_refusal",
    "unlock_refusal_reason",
]
