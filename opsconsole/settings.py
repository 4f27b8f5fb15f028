"""Settings for opsconsole: one file, everything from the environment.

Two modes:
- sandbox (``OPSCONSOLE_SANDBOX=1``, the default): local AWS (moto server), local
  PostgreSQL and Redis; sensible defaults so ``make run`` needs nothing.
- production (``OPSCONSOLE_SANDBOX=0``): every value that has no safe default is required
  and a missing one stops the start with the variable's name.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from opsconsole.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
SANDBOX_DIR = BASE_DIR / ".sandbox"

SANDBOX = env_bool("OPSCONSOLE_SANDBOX", True)
DEBUG = env_bool("DJANGO_DEBUG", False)
PRODUCTION = not SANDBOX
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is set in production (OPSCONSOLE_SANDBOX=0): debug pages show settings "
        "and tracebacks to anyone who causes an error. Unset DJANGO_DEBUG."
    )


def _sandbox_secret_key() -> str:
    # A per-checkout key kept next to the sandbox state: stable across restarts, never
    # committed, never shared between machines.
    key_file = SANDBOX_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    import secrets

    SANDBOX_DIR.mkdir(exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


if PRODUCTION:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=True)
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        env_str("DJANGO_ALLOWED_HOSTS", required=True)
    DATABASE_URL = env_str("DATABASE_URL", required=True)
    BROKER_URL = env_str("REDIS_URL", required=True)
    AWS_REGION = env_str("AWS_DEFAULT_REGION", required=True)
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or _sandbox_secret_key()
    ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
    DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/opsconsole")
    BROKER_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
    AWS_REGION = env_str("AWS_DEFAULT_REGION", "us-east-1")

CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # Its Swagger UI's own static files (served from the package, not a CDN).
    "ninja",
    "template_partials",
    "csp",
    "axes",
    "opsconsole.core",
    "opsconsole.accounts",
    "opsconsole.audit",
    "opsconsole.jobs",
    "opsconsole.awsaccounts",
    "opsconsole.webhooks",
    "tenants",
    "deployments",
    "opsconsole.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before every middleware that renders a page, so each page can use request.csp_nonce.
    "csp.middleware.CSPMiddleware",
    "opsconsole.core.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # /api/ only: text PostgreSQL cannot store is refused before anything reads it...
    "opsconsole.api.guard.NulTextMiddleware",
    # ...and a change repeated with the same Idempotency-Key is done once.
    "opsconsole.api.idempotency.IdempotencyMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "opsconsole.urls"
WSGI_APPLICATION = "opsconsole.wsgi.application"

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
                "opsconsole.core.context_processors.console",
            ],
        },
    }
]

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DB_CONNECT_TIMEOUT", 5)

# --- Database TLS (issue 13) -----------------------------------------------------------
# Production checks the server's certificate against the RDS CA bundle shipped in
# opsconsole/aws/certs/ (its header says where it came from), for the console's own
# database and for tenant databases alike. The sandbox's local PostgreSQL has no
# certificate: `prefer`, as libpq does by default.
RDS_CA_BUNDLE = str(Path(__file__).resolve().parent / "aws" / "certs" / "rds-ca-bundle.pem")
_SSLMODE_DEFAULT = "verify-full" if PRODUCTION else "prefer"
_SSLROOTCERT_DEFAULT = RDS_CA_BUNDLE if PRODUCTION else ""


def _database_tls(mode_var: str, cert_var: str) -> tuple[str, str]:
    mode = env_str(mode_var, _SSLMODE_DEFAULT)
    cert = env_str(cert_var, _SSLROOTCERT_DEFAULT)
    if mode in {"verify-ca", "verify-full"} and cert and not Path(cert).is_file():
        raise ImproperlyConfigured(
            f"{cert_var} names {cert}, which is not a file: {mode_var}={mode} needs the CA "
            "certificates that signed the database server's certificate."
        )
    return mode, cert


# A sslmode in DATABASE_URL's query string wins over DB_SSLMODE.
DB_SSLMODE, DB_SSLROOTCERT = _database_tls("DB_SSLMODE", "DB_SSLROOTCERT")
DATABASES["default"]["OPTIONS"].setdefault("sslmode", DB_SSLMODE)
if DB_SSLROOTCERT:
    DATABASES["default"]["OPTIONS"].setdefault("sslrootcert", DB_SSLROOTCERT)
TENANT_DB_SSLMODE, TENANT_DB_SSLROOTCERT = _database_tls(
    "TENANT_DB_SSLMODE", "TENANT_DB_SSLROOTCERT"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tenants:list"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_MIN_LENGTH = env_int("PASSWORD_MIN_LENGTH", 12)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": PASSWORD_MIN_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Production hardening (issue 13): HTTPS, cookies, proxies, CSP, login lockout -------
# `manage.py check --deploy --fail-level WARNING` passes with the production defaults
# (tests/test_hardening.py). Each can be loosened from the environment where a deployment
# really needs it.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
# htmx sends the token from the page (base.html hx-headers); no script reads the cookie.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# A load balancer's health check speaks plain HTTP to the target: answer it, not redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 86400 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)


def _proxy_ssl_header(value: str) -> tuple[str, str] | None:
    # "X-Forwarded-Proto" or "X-Forwarded-Proto: https" -> Django's (META key, value).
    if not value:
        return None
    name, _, expected = value.partition(":")
    return "HTTP_" + name.strip().upper().replace("-", "_"), expected.strip() or "https"


# Only behind a proxy that always sets (and overwrites) this header, e.g. an AWS ALB:
# SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto. Unset, requests are judged by their own scheme.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env_str("SECURE_PROXY_SSL_HEADER", ""))
# Client addresses (audit log, login lockout) from X-Forwarded-For, only when the request
# comes from one of TRUSTED_PROXIES (addresses or networks); the client is the hop
# TRUSTED_PROXY_COUNT from the right (opsconsole/core/proxies.py).
USE_X_FORWARDED_FOR = env_bool("USE_X_FORWARDED_FOR", False)
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1)
if USE_X_FORWARDED_FOR and not TRUSTED_PROXIES:
    raise ImproperlyConfigured(
        "USE_X_FORWARDED_FOR=1 needs TRUSTED_PROXIES: the addresses or networks of the "
        "proxies in front of the console (e.g. the load balancer's subnets, 10.0.0.0/20)."
    )
if TRUSTED_PROXY_COUNT < 1:
    raise ImproperlyConfigured(f"TRUSTED_PROXY_COUNT must be 1 or more, got {TRUSTED_PROXY_COUNT}.")

# Login throttling (django-axes): a username from one address is locked for
# AXES_COOLOFF_MINUTES after AXES_FAILURE_LIMIT failures in a row.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "opsconsole.core.proxies.client_address"
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
# Failures are in the audit log (opsconsole/accounts/login_audit.py); axes's own log lines
# would repeat them, and its start-up banner would land in every command's output.
AXES_VERBOSE = False

# Content-Security-Policy (django-csp): scripts and styles from our own static files only;
# an inline <script> or <style> needs nonce="{{ request.csp_nonce }}". htmx's own indicator
# style is turned off in base.html (its rules live in console.css).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],  # data: for the API page's Swagger UI icons
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# One date format across the console, with its time zone (opsconsole/formats/en/formats.py:
# the locale's own formats would otherwise win over DATETIME_FORMAT).
FORMAT_MODULE_PATH = ["opsconsole.formats"]
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / ".sandbox" / "staticfiles" if SANDBOX else BASE_DIR / "staticfiles"
if SANDBOX:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # served from finders; keeps WhiteNoise quiet
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # botocore logs request bodies at DEBUG, which would put secret values in the logs.
        "botocore": {"level": "WARNING"},
        "boto3": {"level": "WARNING"},
        # django-axes logs every login at INFO; failures are in the audit log already.
        "axes": {"level": "WARNING"},
    },
}

# --- AWS -------------------------------------------------------------------------------
# In the sandbox boto3 talks to the moto server; in production AWS_ENDPOINT_URL is unset.
SANDBOX_AWS_PORT = env_int("SANDBOX_AWS_PORT", 4566)
AWS_ENDPOINT_URL = env_str(
    "AWS_ENDPOINT_URL", f"http://127.0.0.1:{SANDBOX_AWS_PORT}" if SANDBOX else ""
)
if PRODUCTION and AWS_ENDPOINT_URL:
    raise ImproperlyConfigured(
        f"AWS_ENDPOINT_URL is set ({AWS_ENDPOINT_URL}) in production (OPSCONSOLE_SANDBOX=0): "
        "every AWS call would go there instead of AWS. Unset AWS_ENDPOINT_URL."
    )
# One service somewhere else (botocore's own convention, AWS_ENDPOINT_URL_<SERVICE>): the
# rollout bench puts Lambda behind a model of its limits and everything else on the sandbox.
AWS_SERVICE_ENDPOINTS = {
    key.removeprefix("AWS_ENDPOINT_URL_").lower(): value
    for key, value in os.environ.items()
    if key.startswith("AWS_ENDPOINT_URL_") and value
}
AWS_MAX_ATTEMPTS = env_int("AWS_MAX_ATTEMPTS", 3)
# Another AWS account (a cell, docs/accounts.md) is reached by assuming its role for this
# long (900 to the role's maximum session, 3600 by default); botocore refreshes it first.
AWS_ASSUME_ROLE_SECONDS = env_int("AWS_ASSUME_ROLE_SECONDS", 3600)
OPSCONSOLE_REGIONS = env_list("OPSCONSOLE_REGIONS", [AWS_REGION])
# Names of what the account already has (created by the sandbox seed, or by the platform
# team's own Terraform in production). Tenants are built on top of these.
BASELINE = {
    "vpc_name": env_str("OPSCONSOLE_VPC_NAME", "opsconsole"),
    "function_sg_name": env_str("OPSCONSOLE_FUNCTION_SG", "opsconsole-tenant-functions"),
    "database_sg_name": env_str("OPSCONSOLE_DATABASE_SG", "opsconsole-tenant-databases"),
    "shared_db_instance": env_str("OPSCONSOLE_SHARED_DB", "opsconsole-shared-pg"),
    "shared_db_master_secret": env_str(
        "OPSCONSOLE_SHARED_DB_SECRET", "opsconsole/shared-pg/master"
    ),
    "release_repository": env_str("OPSCONSOLE_ECR_REPOSITORY", "opsconsole/tenant-app"),
    "artifact_bucket": env_str("OPSCONSOLE_ARTIFACT_BUCKET", "opsconsole-artifacts"),
}
# The sandbox maps every RDS endpoint to this real PostgreSQL server.
SANDBOX_PG_HOST = env_str("SANDBOX_PG_HOST", DATABASES["default"].get("HOST") or "127.0.0.1")
SANDBOX_PG_PORT = env_int("SANDBOX_PG_PORT", int(DATABASES["default"].get("PORT") or 5432))
SANDBOX_PG_USER = env_str("SANDBOX_PG_USER", DATABASES["default"].get("USER") or "postgres")

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = BROKER_URL
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
    # Above the longest task's hard limit, or Redis re-delivers a task still running.
    "visibility_timeout": 3600,
}
CELERY_TASK_DEFAULT_QUEUE = env_str("OPSCONSOLE_QUEUE", "opsconsole")
# A web request that sends a task must not hang on a dead broker: the job row is saved
# already and the sweep sends it again.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 900)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 960)
CELERY_TASK_IGNORE_RESULT = True  # the UI reads job rows, never the result backend
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "jobs-requeue-expired": {
        "task": "opsconsole.jobs.tasks.jobs_requeue_expired",
        "schedule": env_int("JOBS_SWEEP_SECONDS", 30),
    },
    "tenants-drift-daily": {
        "task": "tenants.tasks.tenants_check_drift_daily",
        "schedule": crontab(hour=env_int("DRIFT_CHECK_HOUR_UTC", 3), minute=17),
    },
    # A tenant's secret changed outside the console (a rotation Lambda, the CLI): apply it.
    "tenants-secrets-watch": {
        "task": "tenants.tasks.tenants_secrets_watch",
        "schedule": env_int("SECRET_WATCH_SECONDS", 300),
        "options": {"expires": env_int("SECRET_WATCH_SECONDS", 300)},
    },
    # The fleet page's alarm states and watched tenants' metrics (tenants.health.fleet_refresh).
    "health-fleet-refresh": {
        "task": "tenants.tasks.health_fleet_refresh",
        "schedule": env_int("HEALTH_FLEET_REFRESH_SECONDS", 60),
        "options": {"expires": env_int("HEALTH_FLEET_REFRESH_SECONDS", 60)},
    },
    # Numbers that need a master secret are read by workers only (tenants.health.readings).
    "health-read-shared-dbs": {
        "task": "tenants.tasks.health_read_shared_dbs",
        "schedule": env_int("HEALTH_SHARED_DB_SECONDS", 60),
        "options": {"expires": env_int("HEALTH_SHARED_DB_SECONDS", 60)},
    },
}

# Sandbox only: every SANDBOX_DEMO_TRAFFIC_SECONDS (0: never) a few real HTTP requests to
# each active tenant's HTTP API, labelled User-Agent: opsconsole-demo-traffic, so health
# pages chart real invocations, errors and log lines (opsconsole/sandbox/traffic.py).
SANDBOX_DEMO_TRAFFIC_SECONDS = env_int("SANDBOX_DEMO_TRAFFIC_SECONDS", 60)
if SANDBOX and SANDBOX_DEMO_TRAFFIC_SECONDS > 0:
    CELERY_IMPORTS = ["opsconsole.sandbox.tasks"]
    CELERY_BEAT_SCHEDULE["sandbox-demo-traffic"] = {
        "task": "opsconsole.sandbox.tasks.sandbox_demo_traffic",
        "schedule": SANDBOX_DEMO_TRAFFIC_SECONDS,
        # A round not started by the next one's time is dropped, never piled up.
        "options": {"expires": SANDBOX_DEMO_TRAFFIC_SECONDS},
    }

# --- Jobs ------------------------------------------------------------------------------
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 120)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 5)
# A queued job that no worker claimed for this long is sent again (a lost message).
JOB_REDISPATCH_AFTER_SECONDS = env_int("JOB_REDISPATCH_AFTER_SECONDS", 120)
# Fault drills only: sleep this long before each step, so a worker can be killed part way.
JOB_STEP_DELAY_SECONDS = float(env_str("JOB_STEP_DELAY_SECONDS", "0"))

# --- Tenants ---------------------------------------------------------------------------
# Monthly cost estimates shown before onboarding. Rough list prices in USD; adjust per
# region with OPSCONSOLE_PRICE_TABLE_FILE (JSON with the same shape, merged over these).
_US_EAST_1_PRICES = {
    "rds_instance_hour": {
        "db.t4g.micro": 0.016,
        "db.t4g.small": 0.032,
        "db.t4g.medium": 0.065,
        "db.t4g.large": 0.129,
        "db.m7g.large": 0.168,
        "db.r7g.large": 0.239,
    },
    "rds_instance_vcpus": {
        "db.t4g.micro": 2,
        "db.t4g.small": 2,
        "db.t4g.medium": 2,
        "db.t4g.large": 2,
        "db.m7g.large": 2,
        "db.r7g.large": 2,
    },
    "rds_storage_gb_month": 0.115,
    "aurora_acu_hour": 0.12,
    "aurora_storage_gb_month": 0.10,
    "shared_db_share_month": 3.00,
    "rds_proxy_vcpu_hour": 0.015,
    "lambda_request_million": 0.20,
    "lambda_gb_second": 0.0000166667,
    "lambda_gb_second_arm64": 0.0000133334,
    "http_api_request_million": 1.00,
    "secret_month": 0.40,
    "alarm_month": 0.10,
    "log_ingest_gb": 0.50,
}


def _scaled(prices: dict, factor: float) -> dict:
    return {
        k: (
            {kk: round(vv * factor, 4) for kk, vv in v.items()}
            if k == "rds_instance_hour"
            else v
            if isinstance(v, dict)
            else round(v * factor, 10)
        )
        for k, v in prices.items()
    }


PRICE_TABLE = {
    "us-east-1": _US_EAST_1_PRICES,
    "us-west-2": _US_EAST_1_PRICES,
    "eu-west-1": _scaled(_US_EAST_1_PRICES, 1.10),
    "eu-central-1": _scaled(_US_EAST_1_PRICES, 1.15),
}
_price_file = env_str("OPSCONSOLE_PRICE_TABLE_FILE", "")
if _price_file:
    import json as _json

    with open(_price_file, encoding="utf-8") as _fh:
        for _region, _prices in _json.load(_fh).items():
            PRICE_TABLE[_region] = {**PRICE_TABLE.get(_region, _US_EAST_1_PRICES), **_prices}
# Traffic assumed by the estimate when the admin does not say (the form asks per tenant).
COST_ASSUMED_REQUESTS_MONTH = env_int("OPSCONSOLE_COST_REQUESTS_MONTH", 1_000_000)
COST_ASSUMED_DURATION_MS = env_int("OPSCONSOLE_COST_DURATION_MS", 120)
# Log lines a request writes (the function's and the API's access log), for the estimate.
COST_ASSUMED_LOG_BYTES_PER_REQUEST = env_int("OPSCONSOLE_COST_LOG_BYTES_PER_REQUEST", 600)
TENANT_LOG_RETENTION_DAYS = env_int("OPSCONSOLE_LOG_RETENTION_DAYS", 30)
TENANT_SECRET_RECOVERY_DAYS = env_int("OPSCONSOLE_SECRET_RECOVERY_DAYS", 7)

# --- Tenant database migrations (docs/tenant-migrations.md) ----------------------------
TENANT_MIGRATIONS_PER_SERVER = env_int("TENANT_MIGRATIONS_PER_SERVER", 4)  # 0: no limit
TENANT_MIGRATION_SLOT_WAIT_S = env_int("TENANT_MIGRATION_SLOT_WAIT_S", 300)
TENANT_MIGRATION_CONNECT_TIMEOUT_S = env_int("TENANT_MIGRATION_CONNECT_TIMEOUT_S", 5)
# Aurora Serverless v2 resumes from a pause in up to ~15 s: keep retrying this long.
TENANT_MIGRATION_RESUME_WAIT_S = env_int("TENANT_MIGRATION_RESUME_WAIT_S", 30)
TENANT_MIGRATION_LOCK_WAIT_S = env_int("TENANT_MIGRATION_LOCK_WAIT_S", 120)
TENANT_MIGRATION_LOCK_TIMEOUT_MS = env_int("TENANT_MIGRATION_LOCK_TIMEOUT_MS", 5000)
TENANT_MIGRATION_STATEMENT_TIMEOUT_MS = env_int("TENANT_MIGRATION_STATEMENT_TIMEOUT_MS", 300000)
# TENANT_DB_SSLMODE and TENANT_DB_SSLROOTCERT: see "Database TLS" above.

# --- Health (issue 6) ---
# The cache lives in the broker's Redis under its own key prefix. Never call cache.clear():
# on Redis it is FLUSHDB and would drop queued tasks too.
if BROKER_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": BROKER_URL,
            "KEY_PREFIX": env_str("OPSCONSOLE_CACHE_PREFIX", "opsconsole-cache"),
            "TIMEOUT": 300,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# CloudWatch answers are fresh this long; older ones are kept (HEALTH_STALE_SECONDS) and
# shown, with their age, when CloudWatch throttles or fails. After a failure no page asks
# again for HEALTH_RETRY_SECONDS.
HEALTH_CACHE_SECONDS = env_int("HEALTH_CACHE_SECONDS", 60)
HEALTH_STALE_SECONDS = env_int("HEALTH_STALE_SECONDS", 86400)
HEALTH_RETRY_SECONDS = env_int("HEALTH_RETRY_SECONDS", 30)
# A failing percentile query usually keeps failing: ask less often.
HEALTH_PERCENTILE_RETRY_SECONDS = env_int("HEALTH_PERCENTILE_RETRY_SECONDS", 600)
# GetMetricData calls of one fleet refresh that run at once.
HEALTH_FLEET_WORKERS = env_int("HEALTH_FLEET_WORKERS", 8)
HEALTH_FLEET_PAGE_SIZE = env_int("HEALTH_FLEET_PAGE_SIZE", 100)
# Deployments a rollout page lists at a time (its counts and progress cover them all).
ROLLOUT_PAGE_SIZE = env_int("ROLLOUT_PAGE_SIZE", 100)
# A worker reads the fleet page's numbers this often; the page polls as often and shows
# their age (docs/health.md, "The fleet page").
HEALTH_FLEET_REFRESH_SECONDS = env_int("HEALTH_FLEET_REFRESH_SECONDS", 60)
# CloudWatch Logs filter for the recent error lines (one term: moto knows no more).
HEALTH_ERROR_LOG_PATTERN = env_str("HEALTH_ERROR_LOG_PATTERN", "ERROR")

# --- Rollouts (issue 5) ---
# Lambda's control plane admits 15 requests/s per account and region (not raisable). All
# workers share one token bucket in Redis: sustained LAMBDA_CONTROL_RATE, bursts up to
# LAMBDA_CONTROL_BURST, so no second exceeds rate + burst (docs/rollouts.md).
RATE_BUDGET_REDIS_URL = env_str(
    "RATE_BUDGET_REDIS_URL",
    BROKER_URL if BROKER_URL.startswith(("redis://", "rediss://")) else "redis://127.0.0.1:6379/0",
)
RATE_BUDGET_PREFIX = env_str("RATE_BUDGET_PREFIX", "opsconsole-budget")
# Budgets are per account; the sandbox and a single-account console can leave this empty.
RATE_BUDGET_ACCOUNT = env_str("RATE_BUDGET_ACCOUNT", "default")
LAMBDA_CONTROL_RATE = float(env_str("LAMBDA_CONTROL_RATE", "10"))
LAMBDA_CONTROL_BURST = float(env_str("LAMBDA_CONTROL_BURST", "5"))
# A deployment step that cannot get budget this long gives its worker back (StepWait).
LAMBDA_BUDGET_WAIT_S = env_int("LAMBDA_BUDGET_WAIT_S", 30)
# A token used later than this after its time is let go and booked again (rate_budget.take).
LAMBDA_BUDGET_MAX_LATE_S = float(env_str("LAMBDA_BUDGET_MAX_LATE_S", "0.05"))
# 0: from the budget and a deployment's chain of waits (rollouts.default_max_parallel, 49
# at 10/s), so the default strategy is not the bottleneck below the budget.
ROLLOUT_DEFAULT_MAX_PARALLEL = env_int("ROLLOUT_DEFAULT_MAX_PARALLEL", 0)
ROLLOUT_DEFAULT_BAKE_S = env_int("ROLLOUT_DEFAULT_BAKE_S", 300)
# The orchestrator also runs after every deployment; the beat entry catches bake times
# ending and anything a lost message left behind.
ROLLOUT_ADVANCE_SECONDS = env_int("ROLLOUT_ADVANCE_SECONDS", 10)
# Deployments that end within this many seconds share one orchestrator pass (deploy_outcome.kick).
ROLLOUT_ADVANCE_DEBOUNCE_S = env_int("ROLLOUT_ADVANCE_DEBOUNCE_S", 1)
# A deployment whose job ended this long ago without its hook's writes is caught up.
ROLLOUT_SYNC_GRACE_S = env_int("ROLLOUT_SYNC_GRACE_S", 60)
RELEASE_UPLOAD_MAX_BYTES = env_int("RELEASE_UPLOAD_MAX_BYTES", 512 * 1024 * 1024)
# A pg_dump uploaded through the console for a restore (bigger ones: give an s3:// URI).
RESTORE_MAX_UPLOAD_BYTES = env_int("RESTORE_MAX_UPLOAD_BYTES", 2 * 1024 * 1024 * 1024)
CELERY_BEAT_SCHEDULE["rollouts-advance"] = {
    "task": "deployments.tasks.rollouts_advance_all",
    "schedule": ROLLOUT_ADVANCE_SECONDS,
}
# A function update stays InProgress for seconds: the deploy step re-checks after this long
# instead of holding its worker in a waiter.
DEPLOY_UPDATE_POLL_S = env_int("DEPLOY_UPDATE_POLL_S", 5)
# How long a deployment after the canary wave watches its tenant once the alias moved (at
# most the rollout's bake): it holds a max_parallel slot meanwhile (docs/rollouts.md).
DEPLOY_WATCH_S = env_int("DEPLOY_WATCH_S", 0)

# --- Outgoing webhooks (docs/webhooks.md) ---
# The console's own address (https://console.example.com): payloads link to the object.
OPSCONSOLE_BASE_URL = env_str("OPSCONSOLE_BASE_URL", "")
WEBHOOK_TIMEOUT_S = env_int("WEBHOOK_TIMEOUT_S", 5)
# Hosts an endpoint may name with plain http (a receiver on the same machine).
WEBHOOK_HTTP_HOSTS = env_list("WEBHOOK_HTTP_HOSTS", ["127.0.0.1", "localhost"] if SANDBOX else [])
WEBHOOK_SECRET_CACHE_S = env_int("WEBHOOK_SECRET_CACHE_S", 300)
WEBHOOK_SECRET_RECOVERY_DAYS = env_int("WEBHOOK_SECRET_RECOVERY_DAYS", 7)
# Retries due sooner than this go as a countdown; later ones (and lost ones) the sweep sends.
WEBHOOK_COUNTDOWN_MAX_S = env_int("WEBHOOK_COUNTDOWN_MAX_S", 900)
WEBHOOK_SWEEP_GRACE_S = env_int("WEBHOOK_SWEEP_GRACE_S", 60)
WEBHOOK_DELIVERY_KEEP_DAYS = env_int("WEBHOOK_DELIVERY_KEEP_DAYS", 30)
CELERY_BEAT_SCHEDULE["webhooks-send-due"] = {
    "task": "opsconsole.webhooks.tasks.webhooks_send_due",
    "schedule": env_int("WEBHOOK_SWEEP_SECONDS", 30),
}

# --- the JSON API (opsconsole/api) -------------------------------------------------------
# New tokens expire after this many days unless their maker chooses (1 to 365).
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90)
# Requests a minute per token; above it the API answers 429 with Retry-After.
API_RATE_PER_MINUTE = env_int("API_RATE_PER_MINUTE", 120)
NINJA_PAGINATION_PER_PAGE = 50
NINJA_PAGINATION_MAX_LIMIT = 500
