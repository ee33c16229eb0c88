"""AuditedModelAdmin: every create, change and delete made in the admin, with its diff,
in the audit log, in the admin's own transaction.

The audit log itself has no admin: it is read on the audit pages (/audit/),
which record who read what.
"""

from django.contrib import admin
from django.db import router, transaction
from django.db.models.deletion import Collector

from apps.audit.constants import Via
from apps.audit.services import (
    audit_model_deleted,
    audit_model_saved,
    audit_noun,
    audit_snapshot,
)

CASCADE_ROWS = 100  # objects deleted with another get a row each, up to this many per model


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose every write is recorded: `<noun>.create`, `.update`, `.delete`.

    Each row carries `details.changes`, {field: [before, after]}, taken from the
    database before the change and from the object after it (many-to-many and
    inline rows included; an inline row gets a row of its own). A save that
    changes nothing writes nothing. Deleting records what was deleted, and what
    went with it. Secrets appear only as "(secret)" / "(changed, value not recorded)".

    Use it in place of admin.ModelAdmin (it calls super(), so it mixes with other
    admins: `class UserAdmin(AuditedModelAdmin, auth_admin.UserAdmin)`). Override:

    - audit_noun: the first word of the verbs (default: the model's verbose name,
      "playbook version" -> "playbook_version");
    - audit_exclude: fields left out of the diff; audit_secret_fields: fields
      whose values are never recorded (besides those named like a secret);
    - audit_snapshot(obj): the dict that is compared;
    - audit_scope(obj): {"service": slug, "environment": slug}, for the filters;
    - audit_details(obj): more details to keep on each row;
    - audit_saved(request, obj, before=...): the row of a save, to call a service instead.
    """

    audit_noun: str = ""
    audit_exclude: tuple = ()
    audit_secret_fields: tuple = ()

    # --- what is recorded -----------------------------------------------------------
    def audit_snapshot(self, obj) -> dict:
        return audit_snapshot(
            obj, exclude=self.audit_exclude, secret_fields=self.audit_secret_fields
        )

    def audit_scope(self, obj) -> dict:
        return {}

    def audit_details(self, obj) -> dict:
        return {}

    def audit_saved(self, request, obj, *, before: dict | None) -> None:
        """Write the row of a creation (`before` is None) or a change. Override to call
        the app's own service instead, when it has one."""
        audit_model_saved(
            obj=obj,
            before=before,
            after=self.audit_snapshot(obj),
            noun=self.audit_noun or None,
            details=self.audit_details(obj),
            **self._who(request),
            **self.audit_scope(obj),
        )

    # --- admin hooks --------------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        if change and obj.pk is not None:
            stored = _stored(obj)
            if stored is not None:
                _pending(request)["before"][_key(obj)] = self.audit_snapshot(stored)
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        befores = {}
        for inline_form in formset.initial_forms:
            instance = inline_form.instance
            if instance.pk is not None and (stored := _stored(instance)) is not None:
                befores[id(instance)] = (instance.pk, str(stored), audit_snapshot(stored))
        super().save_formset(request, form, formset, change)
        rows = _pending(request)["inlines"]
        for obj in formset.new_objects:
            rows.append(("saved", obj, None, None, None))
        for obj, _fields in formset.changed_objects:
            rows.append(("saved", obj, None, None, befores.get(id(obj), (0, "", {}))[2]))
        for obj in formset.deleted_objects:
            pk, name, before = befores.get(id(obj), (obj.pk, str(obj), {}))
            rows.append(("deleted", obj, pk, name, before))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        pending = _pending(request)
        before = pending["before"].pop(_key(obj), None) if change else None
        scope = self.audit_scope(obj)
        self.audit_saved(request, obj, before=before)
        for kind, inline, pk, name, inline_before in pending.pop("inlines", []):
            if kind == "saved":
                audit_model_saved(
                    obj=inline,
                    before=inline_before,
                    after=audit_snapshot(inline),
                    details={"parent": f"{obj} (#{obj.pk})"},
                    **self._who(request),
                    **scope,
                )
            else:
                audit_model_deleted(
                    obj=inline,
                    object_id=str(pk),
                    object_repr=name,
                    before=inline_before,
                    details={"parent": f"{obj} (#{obj.pk})"},
                    **self._who(request),
                    **scope,
                )

    def delete_model(self, request, obj):
        with transaction.atomic(using=router.db_for_write(type(obj))):
            pk, name = obj.pk, str(obj)
            before, details, scope = (
                self.audit_snapshot(obj),
                self.audit_details(obj),
                self.audit_scope(obj),
            )
            cascade = _cascade(obj)
            super().delete_model(request, obj)
            audit_model_deleted(
                obj=obj,
                object_id=str(pk),
                object_repr=name,
                before=before,
                noun=self.audit_noun or None,
                details={
                    **details,
                    **({"cascade": cascade["summary"]} if cascade["summary"] else {}),
                },
                **self._who(request),
                **scope,
            )
            for item_pk, item_name, item, item_before in cascade["rows"]:
                audit_model_deleted(
                    obj=item,
                    object_id=str(item_pk),
                    object_repr=item_name,
                    before=item_before,
                    details={"deleted_with": f"{name} (#{pk})"},
                    **self._who(request),
                    **scope,
                )

    def delete_queryset(self, request, queryset):
        # One row per object; the bulk delete would record none.
        with transaction.atomic(using=router.db_for_write(queryset.model)):
            for obj in queryset:
                self.delete_model(request, obj)

    def _who(self, request) -> dict:
        return {"acting_user": request.user, "via": Via.ADMIN, "request": request}


def _key(obj) -> tuple:
    return (obj._meta.label_lower, obj.pk)


def _pending(request) -> dict:
    if not hasattr(request, "_audit_pending"):
        request._audit_pending = {"before": {}, "inlines": []}
    request._audit_pending.setdefault("inlines", [])
    return request._audit_pending


def _stored(obj):
    """The row as the database has it (locked when in a transaction)."""
    objects = type(obj)._default_manager
    if transaction.get_connection(router.db_for_write(type(obj))).in_atomic_block:
        objects = objects.select_for_update()
    return objects.filter(pk=obj.pk).first()


def _cascade(obj) -> dict:
    """What deleting `obj` deletes with it: a summary, and a snapshot of each object."""
    collector = Collector(using=router.db_for_write(type(obj)))
    collector.collect([obj])
    summary, rows = {}, []
    for model, instances in collector.data.items():
        instances = [item for item in instances if item != obj]
        if not instances or model._meta.auto_created:
            continue
        summary[model._meta.label_lower] = {
            "count": len(instances),
            "objects": sorted(str(item) for item in instances)[:20],
        }
        if len(instances) <= CASCADE_ROWS:
            rows += [(item.pk, str(item), item, audit_snapshot(item)) for item in instances]
    for queryset in collector.fast_deletes:
        model = queryset.model
        if model._meta.auto_created:
            continue
        count = queryset.count()
        if count:
            entry = summary.setdefault(model._meta.label_lower, {"count": 0, "objects": []})
            entry["count"] += count
            entry["objects"] = sorted(str(item) for item in queryset[:20])
    return {"summary": summary, "rows": rows}


__all__ = ["AuditedModelAdmin", "audit_noun"]
