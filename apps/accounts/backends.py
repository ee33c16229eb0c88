from django.contrib.auth.backends import BaseBackend

from apps.accounts.constants import SEE_WORKERS
from apps.accounts.permissions import can_read_audit, can_see_workers, role_permissions
from apps.audit.constants import READ_LOG


class RolePermissionBackend(BaseBackend):
    """The permissions a role brings, so an Ops or auditor account needs no hand-picked
    permission. Authenticates nobody.

    - The admin's model permissions (apps.accounts.permissions.role_permissions), for
      staff accounts only.
    - Reading the audit log (apps.audit.constants.READ_LOG), for whom
      apps.accounts.permissions.can_read_audit allows, staff or not: the audit pages
      and API ask `user.has_perm(READ_LOG)`.
    - Seeing the workers page (SEE_WORKERS), for whom can_see_workers allows.
    """

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if obj is not None:
            return set()
        perms = set(role_permissions(user_obj))
        if can_read_audit(user_obj):
            perms.add(READ_LOG)
        if can_see_workers(user_obj):
            perms.add(SEE_WORKERS)
        return perms

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        if obj is not None:
            return False
        if perm == READ_LOG:
            return can_read_audit(user_obj)
        if perm == SEE_WORKERS:
            return can_see_workers(user_obj)
        return perm in role_permissions(user_obj)

    def has_module_perms(self, user_obj, app_label) -> bool:
        # The admin's index: only the admin's own permissions open an app there.
        return any(perm.startswith(f"{app_label}.") for perm in role_permissions(user_obj))
