from django.contrib.auth.backends import BaseBackend

from apps.accounts.permissions import role_permissions


class RolePermissionBackend(BaseBackend):
    """The admin permissions a role brings (apps.accounts.permissions.role_permissions),
    so an Ops or auditor account needs no hand-picked permission. Authenticates nobody."""

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        return role_permissions(user_obj) if obj is None else set()

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)

    def has_module_perms(self, user_obj, app_label) -> bool:
        return any(perm.startswith(f"{app_label}.") for perm in role_permissions(user_obj))
