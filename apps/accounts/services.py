from django.db import transaction

from apps.accounts.models import ApiToken, User
from apps.audit.services import audit_record


def token_create(
    *, user: User, name: str, acting_user: User | None, via: str
) -> tuple[ApiToken, str]:
    """Create an API token for `user`; return it with its key, which is never stored."""
    key = ApiToken.new_key()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, key_hash=ApiToken.hash_key(key), prefix=key[3:11]
        )
        audit_record(
            actor=acting_user,
            via=via,
            verb="token.create",
            obj=token,
            details={"user": user.username, "name": name, "prefix": token.prefix},
        )
    return token, key
