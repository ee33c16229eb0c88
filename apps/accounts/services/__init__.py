"""Teams, memberships, grants, users, API tokens and refusals: every change with its
audit row, in the same transaction. By subject in `teams`, `users` and `tokens`; import
them from here."""

from apps.accounts.services.teams import (
    grant_delete,
    grant_save,
    membership_delete,
    membership_save,
    team_delete,
    team_save,
    teams_sync_from_sso,
)
from apps.accounts.services.tokens import (
    token_create,
    token_delete,
    token_owner_errors,
    token_refused_record,
    token_revoke,
)
from apps.accounts.services.users import (
    USER_AUDITED_FIELDS,
    refusal_record,
    user_audit_saved,
    user_delete,
)

__all__ = [
    "USER_AUDITED_FIELDS",
    "grant_delete",
    "grant_save",
    "membership_delete",
    "membership_save",
    "refusal_record",
    "team_delete",
    "team_save",
    "teams_sync_from_sso",
    "token_create",
    "token_delete",
    "token_owner_errors",
    "token_refused_record",
    "token_revoke",
    "user_audit_saved",
    "user_delete",
]
