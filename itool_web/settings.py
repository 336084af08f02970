"""Settings, read from the environment; with nothing set, an embedded default needing no server."""

from __future__ import annotations

import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Everything the app writes by default (SQLite file, broker folders, media, checkpoints) lives here.
DATA_DIR = Path(env("ITOOL_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in DATA_DIR."""
    if key := env("SECRET_KEY", default=""):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "apps.projects",
    "apps.catalog",
    "apps.rewards",
    "apps.search",
    "apps.curation",
    "apps.training",
    "apps.datasets",
    "apps.arms",
    # REST API (apps/api): DRF, token auth, filters, the OpenAPI schema and its docs page (assets vendored by
    # the sidecar package: no CDN)
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "itool_web.security.SecurityHeadersMiddleware",  # before WhiteNoise: static files get the headers too
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "itool_web.urls"
WSGI_APPLICATION = "itool_web.wsgi.application"

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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL=postgres://user@host:5432/name uses PostgreSQL through psycopg 3.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server read while a worker writes; writers wait instead of failing.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
        "transaction_mode": "IMMEDIATE",
    }
    # A file (not :memory:) so that a worker process started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # PostgreSQL's JIT compiles the review pages' short aggregate queries for up to a second each; they run in
    # milliseconds without it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]  # the review pages' own CSS and JS (vendored: no CDN)
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing one
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(DATA_DIR / "media")))
# Trained policies (save_pretrained folders) go here; a shared file system when workers scale out.
CHECKPOINT_DIR = Path(env("CHECKPOINT_DIR", default=str(DATA_DIR / "checkpoints")))
# A running stage whose worker sent no progress for this long is marked failed (its worker died); resumable.
ROUND_STALL_MINUTES = env.int("ROUND_STALL_MINUTES", default=30)
# An import job whose worker sent no heartbeat for this long has died: it is marked failed when import jobs are read.
IMPORT_STALL_MINUTES = env.int("IMPORT_STALL_MINUTES", default=30)

# Uploads larger than this are refused before they are written anywhere (bytes; default 1 GiB).
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=1 << 30)
FILE_UPLOAD_HANDLERS = ["apps.catalog.uploads.LimitedTemporaryFileUploadHandler"]

# --- REST API (apps/api) ----------------------------------------------------------------------
# Throttle counters live in the cache: set CACHE_URL (e.g. redis://host:6379/1) when several web processes
# serve the API, so that they share one count; the default cache is per process.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
API_THROTTLE_RATE = env("API_THROTTLE_RATE", default="6000/hour") or None  # per user (one token each); "" = off
# Password checks per client address, one count for the token endpoint, /accounts/login/ and /admin/login/
API_AUTH_THROTTLE_RATE = env("API_AUTH_THROTTLE_RATE", default="30/minute") or None
# The client address of a request: REMOTE_ADDR with 0 (the default: nothing a client sends is trusted). Behind
# N reverse proxies that each append to X-Forwarded-For, set N: the address N entries from the end is used.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated request gets 401 with `WWW-Authenticate: Token`
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browser's login (CSRF enforced)
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["apps.api.throttling.UserRateThrottle"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "apps.api.pagination.KeysetPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "NUM_PROXIES": NUM_PROXIES,  # unset, DRF keys throttles on the client's own X-Forwarded-For
}
SPECTACULAR_SETTINGS = {
    "TITLE": "iTool Web API",
    "DESCRIPTION": "Tools, queries, search trees, step-level preference pairs and their review, training rounds "
    "and dataset snapshots. Authenticate with `Authorization: Token <key>` "
    "(POST /api/v1/auth/token/).",
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "apps.api.schema.add_error_responses"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "PairStatusEnum": "apps.curation.models.PreferencePair.Status",
        "RoundStateEnum": "apps.training.models.TrainingRound.State",
        "AlgorithmEnum": "apps.training.models.TrainingRound.Algorithm",
        "NewRoundAlgorithmEnum": "apps.api.training.NEW_ROUND_ALGORITHMS",
        "JobStatusEnum": "itool_web.jobs.JobStatus",  # every job row: imports, trees, eval runs, files, arms
        "QueryKindEnum": "apps.catalog.models.Query.Kind",
        "CheckpointKindEnum": "apps.training.models.Checkpoint.Kind",
    },
}

# --- Security headers (itool_web/security.py and Django's SecurityMiddleware) ------------------------------
# Scripts only from this site's own files: no inline script, no on* attributes, no javascript: links, no eval.
# Styles from its files too; style="" attributes are allowed (server-rendered widths and colours: they run nothing).
CONTENT_SECURITY_POLICY = env(
    "CONTENT_SECURITY_POLICY",
    default="; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    ),
)
PERMISSIONS_POLICY = env("PERMISSIONS_POLICY", default="camera=(), microphone=(), geolocation=(), payment=(), usb=()")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Served over HTTPS: set these (off by default: the demo serves plain HTTP on 127.0.0.1).
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):  # only behind a proxy that sets it (and strips the client's)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/projects/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Generation -------------------------------------------------------------------------------
# Which backend samples from the policy: transformers (local, default), vllm (GPU extra), or openai
# (any OpenAI-compatible completions server: `vllm serve`, SGLang, TGI). See docs/scaling.md.
GENERATION_BACKEND = env("GENERATION_BACKEND", default="transformers")
GENERATION_DEVICE = env("GENERATION_DEVICE", default="cpu")  # transformers: cpu, cuda, cuda:1 ...
# torch threads while generating (transformers); 0 = torch's default. A tiny model's ops are too small to
# split across cores: 1 is faster for it, and much faster on a busy machine.
GENERATION_THREADS = env.int("GENERATION_THREADS", default=0)
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="http://127.0.0.1:8001/v1")  # openai backend
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_MODEL = env("OPENAI_MODEL", default="")  # default: the checkpoint's path as the served model name
VLLM_TENSOR_PARALLEL_SIZE = env.int("VLLM_TENSOR_PARALLEL_SIZE", default=1)
# Where a stage's backend runs: "process" = a child process per stage (select, search, evaluate), which exits at
# the stage's end and so returns all the engine's memory, GPU and host; "none" = in the worker's own process.
# The openai backend always runs in-process (the model is on the server). See docs/gpu.md.
GENERATION_ISOLATION = env("GENERATION_ISOLATION", default="process")
# Trees per search task (`search.trees_search`): one generate call serves them all each step. On a GPU, more trees
# fill more of the engine's batch (vLLM runs up to 256 sequences at once by default: 86 trees of 3 samples).
SEARCH_SHARD_TREES = env.int("SEARCH_SHARD_TREES", default=64)
# Whether the search stage overlaps its bookkeeping with generation (two halves of the trees in turns, see
# workers/mcts/search.py run_search): "auto" = on, except for the transformers backend on the CPU, where the two
# would share the same cores and a batch's composition moves float rounding (the CPU demo's figures stay put).
# Only when each half's call holds at least SEARCH_OVERLAP_MIN_SAMPLES samples (an engine's full batch): a
# half-size call that does not fill the engine takes about as long as a full one.
SEARCH_OVERLAP = env("SEARCH_OVERLAP", default="auto")
SEARCH_OVERLAP_MIN_SAMPLES = env.int("SEARCH_OVERLAP_MIN_SAMPLES", default=256)

# --- Training launch (workers/train/launch.py, docs/scaling.md) ---------------------------------
# Processes `accelerate launch` starts per training job; an accelerate config file (DDP, FSDP, DeepSpeed) for GPUs.
TRAIN_NUM_PROCESSES = env.int("TRAIN_NUM_PROCESSES", default=1)
TRAIN_ACCELERATE_CONFIG = env("TRAIN_ACCELERATE_CONFIG", default="")

# --- Celery ---------------------------------------------------------------------------------
# Default: kombu's filesystem transport, which needs no server yet delivers across processes.
_BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
    _default_backend = f"file://{DATA_DIR / 'results'}"
    (DATA_DIR / "results").mkdir(exist_ok=True)
else:
    _default_backend = CELERY_BROKER_URL
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=_default_backend)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long tasks: do not hoard messages
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXTENDED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Run tasks in the calling process (tests of services, one-shot scripts).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
