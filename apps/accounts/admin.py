from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.accounts import services
from apps.accounts.constants import ALL_TOKEN_SCOPES, TokenScope
from apps.accounts.models import ApiToken, Grant, Membership, Team, User
from apps.audit.constants import Via
from apps.audit.services import audit_snapshot


class AuditedInlinesMixin:
    """Memberships and grants edited inline are saved through the services that record
    each change in the audit log (in the admin's transaction)."""

    def save_formset(self, request, form, formset, change):
        if formset.model not in (Membership, Grant):
            return super().save_formset(request, form, formset, change)
        audit = {"acting_user": request.user, "via": Via.ADMIN, "request": request}
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            if isinstance(obj, Membership):
                services.membership_delete(membership=obj, **audit)
            else:
                services.grant_delete(grant=obj, **audit)
        for obj in instances:
            if isinstance(obj, Membership):
                services.membership_save(membership=obj, **audit)
            else:
                services.grant_save(grant=obj, **audit)
        formset.save_m2m()
        return None


class TeamMembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("user",)
    verbose_name = "member"


class UserMembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("team", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("team",)
    verbose_name = "team"


class GrantFormSet(BaseInlineFormSet):
    """Refuses a grant the team has already (or twice in the list) with a message on its
    row, before grant_save's full_clean would refuse it inside save_formset."""

    def clean(self):
        super().clean()
        seen = set()
        for form in self.forms:
            if not getattr(form, "cleaned_data", None) or self._should_delete_form(form):
                continue
            grant = form.instance
            key = (grant.service_id, grant.environment_id, grant.right)
            duplicate = key in seen
            seen.add(key)
            if not duplicate and self.instance.pk is not None:
                try:
                    grant.validate_constraints()
                except ValidationError:
                    duplicate = True
            if duplicate:
                form.add_error(None, "The team already has this grant.")


class GrantInline(admin.TabularInline):
    model = Grant
    formset = GrantFormSet
    extra = 0
    fields = ("service", "environment", "right")


@admin.register(User)
class UserAdmin(AuditedInlinesMixin, BaseUserAdmin):
    fieldsets = (*BaseUserAdmin.fieldsets, ("Pushbutton", {"fields": ("role",)}))
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "role", "usable_password",
                                                 "password1", "password2")}),
    )  # fmt: skip
    list_display = ("username", "email", "role", "is_staff", "is_active")
    list_filter = ("role", "is_staff", "is_active", "teams")
    inlines = [UserMembershipInline]

    def get_inline_instances(self, request, obj=None):
        # Teams are added once the user exists.
        return super().get_inline_instances(request, obj) if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Ops manage accounts, but cannot make anyone (themselves included) a superuser.
            readonly += ("is_superuser", "groups", "user_permissions")
        return readonly

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        stored = User.objects.filter(pk=obj.pk).first() if change else None
        before = audit_snapshot(stored) if stored else None
        super().save_model(request, obj, form, change)
        services.user_audit_saved(
            user=obj, before=before, acting_user=request.user, via=Via.ADMIN, request=request
        )

    def delete_model(self, request, obj):
        services.user_delete(user=obj, acting_user=request.user, via=Via.ADMIN, request=request)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for user in queryset:
                services.user_delete(
                    user=user, acting_user=request.user, via=Via.ADMIN, request=request
                )


@admin.register(Team)
class TeamAdmin(AuditedInlinesMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "sso_group", "member_count", "owned_services")
    search_fields = ("name", "slug", "sso_group")
    prepopulated_fields = {"slug": ("name",)}
    fields = ("name", "slug", "description", "sso_group")
    inlines = [TeamMembershipInline, GrantInline]

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(description="owns")
    def owned_services(self, obj):
        return ", ".join(service.name for service in obj.services.all()) or "—"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=Count("memberships", distinct=True))
            .prefetch_related("services")
        )

    def save_model(self, request, obj, form, change):
        services.team_save(team=obj, acting_user=request.user, via=Via.ADMIN, request=request)

    def delete_model(self, request, obj):
        services.team_delete(team=obj, acting_user=request.user, via=Via.ADMIN, request=request)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for team in queryset:
                services.team_delete(
                    team=team, acting_user=request.user, via=Via.ADMIN, request=request
                )


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Who may do what where, at a glance: every grant, filterable."""

    list_display = ("team", "service_or_every", "environment", "right")
    list_filter = ("environment", "right", "team", "service")
    list_select_related = ("team", "service", "environment")
    fields = ("team", "service", "environment", "right")

    @admin.display(description="service", ordering="service__name")
    def service_or_every(self, obj):
        return obj.service or "every service"

    def save_model(self, request, obj, form, change):
        services.grant_save(grant=obj, acting_user=request.user, via=Via.ADMIN, request=request)

    def delete_model(self, request, obj):
        services.grant_delete(grant=obj, acting_user=request.user, via=Via.ADMIN, request=request)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for grant in queryset.select_related("team", "service", "environment"):
                services.grant_delete(
                    grant=grant, acting_user=request.user, via=Via.ADMIN, request=request
                )


class ApiTokenAddForm(forms.ModelForm):
    """A token for any user, e.g. a CI service account; its key is shown once, after saving."""

    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=ALL_TOKEN_SCOPES,
        help_text="read: GET requests; run: launch and cancel runs.",
    )

    class Meta:
        model = ApiToken
        fields = ("user", "name", "scopes", "environments", "expires_at")

    acting_user = None  # set by ApiTokenAdmin.get_form

    def clean(self):
        cleaned = super().clean()
        if (user := cleaned.get("user")) is not None:
            errors = services.token_owner_errors(
                user=user,
                acting_user=self.acting_user,
                environments=cleaned.get("environments") or (),
            )
            for name, messages_ in errors.items():
                for message in messages_:
                    self.add_error(name, message)
        return cleaned

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name", "user", "prefix", "scopes", "expires_at", "created_at", "last_used_at",
        "revoked_at",
    )  # fmt: skip
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "prefix", "user__username")
    filter_horizontal = ("environments",)
    autocomplete_fields = ("user",)
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = type(
                "ApiTokenAddForm", (ApiTokenAddForm,), {"acting_user": request.user}
            )
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ApiTokenAddForm.Meta.fields
        return (
            "user", "name", "prefix", "scopes", "environments", "expires_at", "created_by",
            "created_at", "last_used_at", "revoked_at",
        )  # fmt: skip

    def has_change_permission(self, request, obj=None):
        # A token is never edited: it is created (key shown once) and revoked.
        return False

    def delete_model(self, request, obj):
        services.token_delete(token=obj, acting_user=request.user, via=Via.ADMIN, request=request)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for token in queryset.select_related("user"):
                services.token_delete(
                    token=token, acting_user=request.user, via=Via.ADMIN, request=request
                )

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.change_apitoken")

    def save_model(self, request, obj, form, change):
        token, key = services.token_create(
            user=obj.user,
            name=obj.name,
            scopes=form.cleaned_data["scopes"],
            environments=form.cleaned_data["environments"],
            expires_at=obj.expires_at,
            acting_user=request.user,
            via=Via.ADMIN,
            request=request,
        )
        # The admin goes on with `obj` (its log entry, its answer): make it the new token.
        obj.pk, obj.key_hash, obj.prefix = token.pk, token.key_hash, token.prefix
        obj._state.adding, obj._state.db = False, token._state.db
        request._pushbutton_new_key = key

    def save_related(self, request, form, formsets, change):
        pass  # token_create has set its environments

    def response_add(self, request, obj, post_url_continue=None):
        # Shown in this answer, kept nowhere: no redirect, no message in the session.
        return TemplateResponse(
            request,
            "accounts/admin_token_created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"Token {obj.name} created",
                "token": obj,
                "key": request._pushbutton_new_key,
            },
        )

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        tokens = list(queryset.filter(revoked_at__isnull=True).select_related("user"))
        with transaction.atomic():
            for token in tokens:
                services.token_revoke(
                    token=token, acting_user=request.user, via=Via.ADMIN, request=request
                )
        self.message_user(request, f"Revoked {len(tokens)} token(s).", messages.SUCCESS)
