"""Settings of the Django admin benchmark: a stock project, as `startproject` makes it, run the
way it would be in production (DEBUG off). The database comes from DJANGO_DB: a SQLite file path
or postgres://USER[:PASSWORD]@HOST[:PORT]/NAME."""
import os
from urllib.parse import unquote, urlsplit

# A fixed key: the bench's sessions must stay valid across restarts; nothing here is secret.
SECRET_KEY = "django-admin-bench-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "isins",
]

# startproject's middleware, unchanged.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(value):
    if value.startswith(("postgres://", "postgresql://")):
        url = urlsplit(value)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(url.path.lstrip("/")),
            "USER": unquote(url.username or ""),
            "PASSWORD": unquote(url.password or ""),
            "HOST": url.hostname or "",
            "PORT": str(url.port or ""),
            # Keep connections between requests, as a production deployment would; otherwise
            # each request would also pay for a PostgreSQL connection set-up.
            "CONN_MAX_AGE": 600,
        }
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": value, "CONN_MAX_AGE": 600}


DATABASES = {"default": _database(os.environ.get("DJANGO_DB", "/tmp/django-bench.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sessions stay in the database (Django's default backend): one session read per request.
SESSION_ENGINE = "django.contrib.sessions.backends.db"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
