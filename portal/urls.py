from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

# The admin signs in through the portal's sign-in: two-factor authentication, rate limits.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("portal.api")),
    path("", include("apps.insights.catalog_urls")),
    path("", include("apps.insights.urls")),
    path("", include("apps.runs.urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.environments.urls")),
    path("", include("apps.notifications.urls")),
    path("", include("apps.incidents.urls")),
    path("", include("apps.schedules.urls")),
]

# A refused page says why, and the refusal is kept in the audit log.
handler403 = "apps.accounts.views.permission_denied"
# Under /api/, errors Django answers itself are JSON too, as every other API answer.
handler400 = "portal.api.bad_request"
handler404 = "portal.api.not_found"
handler500 = "portal.api.server_error"
