"""Looking a run up for someone: a run they may not see reads exactly as one that does
not exist, so its existence is never told; the refusal is kept in the audit log."""

from django.core.exceptions import PermissionDenied

from apps.accounts.services import refusal_record
from apps.runs import selectors
from apps.runs.models import Run


def run_for(
    *,
    user,
    run_id: int,
    request=None,
    via: str,
    related: tuple[str, ...] = selectors.PAGE_RELATED,
) -> Run | None:
    """The run `run_id` if `user` may see it, with the `related` rows its reader needs
    (selectors.run_get); None when there is none or they may not (then the refusal,
    with its true reason, is recorded)."""
    try:
        return selectors.run_get(user=user, run_id=run_id, related=related)
    except PermissionDenied as exc:
        refusal_record(
            user=user, reason=str(exc), request=request, via=via, details={"run": run_id}
        )
        return None
