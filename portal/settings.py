"""Pushbutton settings: one module, configured by environment variables.

The embedded default needs nothing but Python packages: SQLite and Celery's
filesystem broker, both under VAR_DIR. Production sets DATABASE_URL (PostgreSQL)
and CELERY_BROKER_URL (Redis or RabbitMQ).
"""

import base64
import ipaddress
import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    return os.getenv(name, default).lower() in ("1", "true", "yes", "on")


def envint(name: str, default: str) -> int:
    return int(os.getenv(name, default))


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


VAR_DIR = Path(os.getenv("VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if key := os.getenv("SECRET_KEY"):
        return key
    # The embedded default keeps a generated key in var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("DEBUG", "false")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
SITE_NAME = os.getenv("SITE_NAME", "Pushbutton")
SITE_ID = 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "allauth",
    "apps.accounts.apps.SignInEmailsConfig",  # allauth.account, not named "Accounts" twice
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "apps.accounts",
    "apps.audit",
    "apps.catalog",
    "apps.environments",
    "apps.workers",
    "apps.runs",
    "apps.incidents",
    "apps.notifications",
    "apps.insights",
    "apps.schedules",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.RequestInputMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "portal.middleware.ReaderTimeZoneMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.environments.context_processors.environment_banner",
                "portal.context_processors.section",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------
# A web process keeps its database connection for DB_CONN_MAX_AGE seconds: a new one per
# request costs a PostgreSQL server process and its authentication, more CPU than most
# API requests take. The health check finds a connection the server dropped (a restart)
# before a request uses it.
DATABASES = {
    "default": dj_database_url.parse(
        os.getenv("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pushbutton.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", "60"),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write at the same time: WAL lets readers
    # run beside the writer, IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on the busy timeout instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

if os.getenv("CACHE_URL"):
    # Shared by all web processes, so sign-in rate limits hold across them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.getenv("CACHE_URL"),
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    # Admin permissions that come with the Ops and auditor roles.
    "apps.accounts.backends.RolePermissionBackend",
]

# --- django-allauth: username or email and password; sign-up closed -------
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_ADAPTER = "apps.accounts.adapters.ClosedSignupAdapter"
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"
EMAIL_BACKEND = os.getenv("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "pushbutton@localhost")
EMAIL_HOST = os.getenv("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.getenv("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "false")
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", "false")
# Failed sign-ins per IP address and per account (allauth's rate limits; 429 past them).
ACCOUNT_RATE_LIMITS = {
    "login": os.getenv("LOGIN_RATE_LIMIT", "30/m/ip"),
    "login_failed": os.getenv("LOGIN_FAILED_RATE_LIMIT", "10/m/ip,5/5m/key"),
    "reset_password": "20/m/ip,5/m/key",
    "reauthenticate": "10/m/user",
}
# Two-factor authentication: an authenticator app (TOTP) and recovery codes, set up by
# each user on their profile. An environment that requires it needs a code entered in
# the last REAUTHENTICATION_TIMEOUT seconds.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME
ACCOUNT_REAUTHENTICATION_TIMEOUT = envint("REAUTHENTICATION_TIMEOUT", "300")
# Optional single sign-on with OpenID Connect: set OIDC_SERVER_URL (the issuer),
# OIDC_CLIENT_ID and OIDC_CLIENT_SECRET. Users are created at their first sign-in; the
# groups in the OIDC_GROUPS_CLAIM claim decide their teams (each team's "SSO group").
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.SsoAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "APPS": [
            {
                "provider_id": "sso",
                "name": os.getenv("OIDC_NAME", "Single sign-on"),
                "client_id": os.getenv("OIDC_CLIENT_ID", ""),
                "secret": os.getenv("OIDC_CLIENT_SECRET", ""),
                "settings": {
                    "server_url": os.getenv("OIDC_SERVER_URL", ""),
                    "oauth_pkce_enabled": True,
                },
            }
        ]
        if os.getenv("OIDC_SERVER_URL")
        else []
    }
}
OIDC_GROUPS_CLAIM = os.getenv("OIDC_GROUPS_CLAIM", "groups")

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.getenv("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "false")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- REST API --------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Signed in, and a token's scope fits the method (read: GET; run: the rest).
    "DEFAULT_PERMISSION_CLASSES": ["apps.accounts.authentication.ScopedAccess"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    # JSON read within bounds (depth, size, numbers, text); forms as DRF reads them.
    "DEFAULT_PARSER_CLASSES": [
        "portal.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pushbutton API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["apps.accounts.authentication.ScopedAccess"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.schema.common_responses",
    ],
}

# --- Celery ----------------------------------------------------------------
# The longest a run may take (an action's timeout above it is refused at launch).
# Celery's soft and hard time limits of a run are its timeout plus these margins;
# the runner's own timeout fires first and kills the run's whole process tree.
RUN_TIMEOUT_MAX = envint("RUN_TIMEOUT_MAX", str(4 * 3600))
RUN_SOFT_TIME_LIMIT_MARGIN = 60
RUN_HARD_TIME_LIMIT_MARGIN = 120
# The filesystem broker's folder: workers that stand for other hosts (each its own
# VAR_DIR) share it by this setting, as they would share Redis or RabbitMQ.
BROKER_DIR = Path(os.getenv("CELERY_BROKER_DIR", VAR_DIR / "broker")).resolve()
CELERY_BROKER_URL = os.getenv("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("in", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "in"),
        "data_folder_out": str(BROKER_DIR / "in"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # The worker looks for new runs this often (the default second adds up to 1 s to each run).
        "polling_interval": 0.1,
    }
else:
    # Long deploys: a message unacknowledged this long goes back to the queue, so it
    # must outlast the longest run (a redelivered run finds itself started anyway).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": envint(
            "CELERY_VISIBILITY_TIMEOUT", str(RUN_TIMEOUT_MAX + RUN_HARD_TIME_LIMIT_MARGIN + 3600)
        ),
    }
    if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= (
        RUN_TIMEOUT_MAX + RUN_HARD_TIME_LIMIT_MARGIN
    ):
        raise ImproperlyConfigured(
            "CELERY_VISIBILITY_TIMEOUT must be above RUN_TIMEOUT_MAX + "
            f"{RUN_HARD_TIME_LIMIT_MARGIN} s, or long runs would be delivered twice."
        )
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.getenv("CELERY_DEFAULT_QUEUE", "runs")
# What is not a playbook run (the periodic tasks — the reaper, schedules, the delivery
# sweep, audit checkpoints —, a run's follow-ups, notifications, syncs) goes to a queue
# of its own with a worker of its own: behind runs, on a worker whose every slot runs a
# playbook for an hour, the reaper would wait that hour to find a dead worker's runs.
CELERY_HOUSEKEEPING_QUEUE = os.getenv("CELERY_HOUSEKEEPING_QUEUE", "housekeeping")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A form field whose choices come from a git repository or an HTTP(S) endpoint asks it
# within FORM_CHOICES_TIMEOUT seconds and keeps its answer FORM_CHOICES_CACHE_SECONDS.
FORM_CHOICES_TIMEOUT = float(os.getenv("FORM_CHOICES_TIMEOUT", "5"))
FORM_CHOICES_CACHE_SECONDS = envint("FORM_CHOICES_CACHE_SECONDS", "60")
# An environment's inventory kept in a playbook repository: `ansible-inventory --list`
# shows its hosts in the admin within this many seconds.
INVENTORY_LIST_TIMEOUT = envint("INVENTORY_LIST_TIMEOUT", "30")
# A launch checks the broker answers (503 otherwise) within this many seconds.
QUEUE_CHECK_TIMEOUT = envint("QUEUE_CHECK_TIMEOUT", "3")
CELERY_BROKER_CONNECTION_TIMEOUT = QUEUE_CHECK_TIMEOUT
# A broker that answered this recently is not asked again before a launch.
QUEUE_CHECK_FRESH_SECONDS = float(os.getenv("QUEUE_CHECK_FRESH_SECONDS", "1"))
# A running run's heartbeat is written every RUN_HEARTBEAT_SECONDS; the reaper,
# every RUN_REAP_SECONDS, ends as lost a run silent for RUN_LOST_AFTER_SECONDS
# (its worker died), so a dead worker's run is lost within the sum: 45 s by default.
RUN_HEARTBEAT_SECONDS = envint("RUN_HEARTBEAT_SECONDS", "10")
RUN_LOST_AFTER_SECONDS = envint("RUN_LOST_AFTER_SECONDS", "30")
# A run no worker took within this long ends failed, freeing its lock; its message expires.
RUN_QUEUED_MAX_SECONDS = envint("RUN_QUEUED_MAX_SECONDS", "3600")
RUN_REAP_SECONDS = envint("RUN_REAP_SECONDS", "15")
# Each worker writes its heartbeat row every WORKER_HEARTBEAT_SECONDS; one silent for
# WORKER_SILENT_AFTER_SECONDS (or stopped) is not live. A launch to an environment whose
# queue no live worker consumes is refused (503); a run already queued there ends failed
# once its queue has had no live worker for RUN_NO_WORKER_GRACE_SECONDS (the reaper).
WORKER_HEARTBEAT_SECONDS = envint("WORKER_HEARTBEAT_SECONDS", "10")
WORKER_SILENT_AFTER_SECONDS = envint("WORKER_SILENT_AFTER_SECONDS", "30")
RUN_NO_WORKER_GRACE_SECONDS = envint("RUN_NO_WORKER_GRACE_SECONDS", "60")

# --- Schedules ---------------------------------------------------------------
# Beat looks for due schedules every SCHEDULE_TICK_SECONDS. A firing due longer than
# SCHEDULE_GRACE_SECONDS ago (the portal, its worker or beat was down) is recorded as
# missed, not caught up; the next one is counted from then.
SCHEDULE_TICK_SECONDS = envint("SCHEDULE_TICK_SECONDS", "30")
SCHEDULE_GRACE_SECONDS = envint("SCHEDULE_GRACE_SECONDS", "300")
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Periodic tasks (`celery beat`, or a worker started with -B).
CELERY_BEAT_SCHEDULE = {
    "runs-reap": {
        "task": "apps.runs.tasks.runs_reap",
        "schedule": RUN_REAP_SECONDS,
        # Not worth doing late: the next one comes soon.
        "options": {"expires": RUN_REAP_SECONDS},
    },
    "notifications-due": {
        "task": "apps.notifications.tasks.deliveries_due",
        "schedule": envint("NOTIFY_SWEEP_SECONDS", "60"),
        "options": {"expires": envint("NOTIFY_SWEEP_SECONDS", "60")},
    },
    "audit-checkpoint": {
        "task": "apps.audit.tasks.audit_checkpoint",
        "schedule": envint("AUDIT_CHECKPOINT_SECONDS", "3600"),
    },
    "schedules-fire": {
        "task": "apps.schedules.tasks.schedules_fire",
        "schedule": SCHEDULE_TICK_SECONDS,
        # Not worth doing late: the next pass comes soon, and finds what is still due.
        "options": {"expires": SCHEDULE_TICK_SECONDS},
    },
    "audit-verify": {
        "task": "apps.audit.tasks.audit_chain_verify",
        "schedule": envint("AUDIT_VERIFY_SECONDS", "86400"),
    },
}
for _entry in CELERY_BEAT_SCHEDULE.values():
    _entry.setdefault("options", {})["queue"] = CELERY_HOUSEKEEPING_QUEUE

# --- Notifications -----------------------------------------------------------
# The portal's address as people reach it: the links in notifications start with it.
PORTAL_URL = os.getenv("PORTAL_URL", "http://localhost:8000")
# A webhook answering slower than this fails the attempt (it is retried).
NOTIFY_TIMEOUT_SECONDS = float(os.getenv("NOTIFY_TIMEOUT_SECONDS", "5"))
# The pauses before each retry of a failed delivery, in seconds; after the last one it
# has failed (shown in the admin's delivery log, with *Send again*). About 2 h in all.
NOTIFY_RETRY_SECONDS = tuple(
    int(x) for x in os.getenv("NOTIFY_RETRY_SECONDS", "5,30,120,600,1800,3600").split(",")
)

# The labels of an alert (Alertmanager) that name its service and environment.
ALERT_SERVICE_LABEL = os.getenv("ALERT_SERVICE_LABEL", "service")
ALERT_ENVIRONMENT_LABEL = os.getenv("ALERT_ENVIRONMENT_LABEL", "environment")

# --- Monitoring --------------------------------------------------------------
# /metrics (Prometheus' text format) answers a request that carries
# `Authorization: Bearer <METRICS_TOKEN>`, or that comes from an address in
# METRICS_ALLOWED_IPS (addresses or CIDRs, comma-separated; the TCP peer, never a
# forwarded header). With neither set, it refuses every request (403).
METRICS_TOKEN = os.getenv("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = envlist("METRICS_ALLOWED_IPS", "")
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_exc}") from None

# --- Runs ------------------------------------------------------------------
SOURCES_DIR = VAR_DIR / "sources"
# Roles and collections installed from playbook versions' requirements files, keyed by
# their pins (apps/catalog/requirements.py); a worker lacking one installs it again.
REQUIREMENTS_DIR = Path(os.getenv("REQUIREMENTS_DIR", VAR_DIR / "requirements")).resolve()
# Approved versions' exported trees, by content hash (apps/catalog/trees.py).
TREES_DIR = VAR_DIR / "trees"
RUNS_TMP_DIR = Path(os.getenv("RUNS_TMP_DIR", VAR_DIR / "runs-tmp"))
RUN_EVENT_BATCH_SIZE = envint("RUN_EVENT_BATCH_SIZE", "500")
RUN_EVENT_FLUSH_SECONDS = float(os.getenv("RUN_EVENT_FLUSH_SECONDS", "0.5"))
# Fernet key(s), comma-separated, for credentials and the secrets a run carries
# between launch and worker: the first encrypts, all decrypt (rotate_encryption_key).
# Defaults to one derived from SECRET_KEY.
FIELD_ENCRYPTION_KEY = os.getenv("FIELD_ENCRYPTION_KEY", "")
# SSH host keys are checked (the worker's ~/.ssh/known_hosts, or the inventory's
# ansible_ssh_common_args); "false" trusts any host key, as ansible-runner would.
RUN_SSH_HOST_KEY_CHECKING = envbool("RUN_SSH_HOST_KEY_CHECKING", "true")
# The portal's own secrets, emptied from the environment the playbook runs in.
RUN_HIDDEN_ENV = envlist(
    "RUN_HIDDEN_ENV",
    "SECRET_KEY,FIELD_ENCRYPTION_KEY,DATABASE_URL,CELERY_BROKER_URL,CACHE_URL,"
    "AUDIT_SIGNING_KEY,EMAIL_HOST_PASSWORD,OIDC_CLIENT_SECRET,METRICS_TOKEN",
)


# --- Audit log ---------------------------------------------------------------
def _audit_signing_key() -> str:
    if key := os.getenv("AUDIT_SIGNING_KEY"):
        return key
    # The embedded default signs its checkpoints out of the box, with a key made at the
    # first start and kept in var/ as the secret key is. An Ed25519 private key is any 32
    # random bytes. Written whole then linked into place, so two processes starting at
    # once (web and worker) end up with the same key.
    path = VAR_DIR / "audit_signing_key"
    if not path.exists():
        fd, draft = tempfile.mkstemp(dir=VAR_DIR, prefix=".audit_signing_key.")  # mode 0600
        try:
            os.write(fd, base64.b64encode(secrets.token_bytes(32)))
            os.fsync(fd)
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            os.close(fd)
            os.unlink(draft)
    return path.read_text().strip()


# The Ed25519 key that signs checkpoints (base64 of its 32 raw bytes, or PEM);
# `manage.py audit_checkpoint --generate-key` makes one. Production sets it from a
# secret store; otherwise it is generated in var/audit_signing_key.
AUDIT_SIGNING_KEY = _audit_signing_key()
# The public key verify_audit checks checkpoints with (default: the signing key's).
AUDIT_PUBLIC_KEY = os.getenv("AUDIT_PUBLIC_KEY", "")
# Where checkpoints are published: an append-only file ("" for none) and/or a webhook.
AUDIT_CHECKPOINT_FILE = os.getenv("AUDIT_CHECKPOINT_FILE", str(VAR_DIR / "audit-checkpoints.jsonl"))
AUDIT_CHECKPOINT_WEBHOOK = os.getenv("AUDIT_CHECKPOINT_WEBHOOK", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    # At DEBUG, ansible-runner prints the playbook's whole environment.
    "loggers": {"ansible-runner": {"level": "INFO"}},
}
