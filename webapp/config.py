"""Configuration classes; every value comes from the environment (and `.env`)."""

import hashlib
import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = BASE_DIR / "instance"

load_dotenv(BASE_DIR / ".env")

# Development signs sessions (and sandbox webhooks) with a random key made on first run
# and kept in instance/, so no key from this public source ever opens a session.
DEV_SECRET_FILE = "secret_key"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_int(name: str, default: int) -> int | str:
    """The variable as an int; a malformed value is kept as text for validate() to name."""
    raw = env_str(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        return raw


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def env_pack_list(name: str, default: str) -> tuple[int | str, ...]:
    """CREDIT_PACKS: pack sizes as ints, Stripe Price ids (and anything else) as text.

    Entries are checked by webapp.domain.catalog, which reports a bad one and offers the
    rest, so a typo never stops the app.
    """
    raw = env_str(name) or default
    parts = (part.strip() for part in raw.split(","))
    return tuple(int(part) if part.isdigit() else part for part in parts if part)


def sqlalchemy_url(url: str) -> str:
    """Point plain postgres URLs at psycopg 3, the driver this project installs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    APP_ENV = "development"
    SECRET_KEY = env_str("SECRET_KEY")  # development: instance/secret_key (see prepare)
    SQLALCHEMY_DATABASE_URI = sqlalchemy_url(
        env_str("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'credits.db'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

    STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
    STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")  # development: derived
    STRIPE_API_BASE = env_str("STRIPE_API_BASE")
    STRIPE_WEBHOOK_TOLERANCE = 300
    # Tests inject an HTTP client here; None means the stripe library's own.
    STRIPE_HTTP_CLIENT = None

    PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")
    CURRENCY = (env_str("CURRENCY") or "usd").lower()
    CREDIT_UNIT_AMOUNT = env_int("CREDIT_UNIT_AMOUNT", 1)
    CREDIT_PACKS = env_pack_list("CREDIT_PACKS", "500,1000,2500,10000")
    # Price packs read from Stripe are re-read after this long (and by `credits packs`);
    # after a failed read, the next try waits PRICE_RETRY_SECONDS.
    PRICE_CACHE_SECONDS = env_int("PRICE_CACHE_SECONDS", 3600)
    PRICE_RETRY_SECONDS = env_int("PRICE_RETRY_SECONDS", 60)
    CHECKOUT_INVOICES = env_bool("CHECKOUT_INVOICES")
    STRIPE_AUTOMATIC_TAX = env_bool("STRIPE_AUTOMATIC_TAX")
    MIN_PURCHASE_CREDITS = env_int("MIN_PURCHASE_CREDITS", 50)
    MAX_PURCHASE_CREDITS = env_int("MAX_PURCHASE_CREDITS", 1_000_000)
    CUSTOMER_PAYS_FEES = env_bool("CUSTOMER_PAYS_FEES")
    STRIPE_FEE_PERCENT = env_str("STRIPE_FEE_PERCENT") or "2.9"
    STRIPE_FEE_FIXED = env_int("STRIPE_FEE_FIXED", 30)
    PLANS = env_str("PLANS") or "basic:1000:900:expire,pro:5000:3900:rollover"
    LOW_BALANCE_THRESHOLD = env_int("LOW_BALANCE_THRESHOLD", 100)
    # Auto-recharge charges per user per calendar month (UTC), minor units, unless the user
    # sets their own limit.
    AUTO_RECHARGE_MONTHLY_LIMIT = env_int("AUTO_RECHARGE_MONTHLY_LIMIT", 50000)

    # Flask-Limiter strings, per user (browser) or per API key; generous, against runaways.
    CHECKOUT_RATE_LIMIT = env_str("CHECKOUT_RATE_LIMIT") or "20 per minute;200 per day"
    USAGE_RATE_LIMIT = env_str("USAGE_RATE_LIMIT") or "1200 per minute"

    PROXY_COUNT = env_int("PROXY_COUNT", 0)
    REDIS_URL = env_str("REDIS_URL")

    PRODUCT_NAME = env_str("PRODUCT_NAME") or "Credits Store"
    # Flask-Mailman: SMTP when MAIL_SERVER is set, else files under instance/mail (/dev/mail).
    MAIL_SERVER = env_str("MAIL_SERVER")
    MAIL_PORT = env_int("MAIL_PORT", 587)
    MAIL_USERNAME = env_str("MAIL_USERNAME") or None
    MAIL_PASSWORD = env_str("MAIL_PASSWORD") or None
    MAIL_USE_TLS = env_bool("MAIL_USE_TLS", True)
    MAIL_USE_SSL = env_bool("MAIL_USE_SSL", False)
    MAIL_TIMEOUT = env_int("MAIL_TIMEOUT", 20)
    MAIL_DEFAULT_SENDER = env_str("MAIL_DEFAULT_SENDER") or "Credits Store <billing@localhost>"
    MAIL_BACKEND = "smtp" if MAIL_SERVER else "file"
    MAIL_FILE_PATH = str(INSTANCE_DIR / "mail")

    # The job queue (Huey) only rings the doorbell; the jobs table is the truth.
    # "redis" at REDIS_URL, "sqlite" (a file under instance/, one host) or "memory" (tests).
    QUEUE_BACKEND = "redis" if REDIS_URL else "sqlite"
    QUEUE_NAME = env_str("QUEUE_NAME") or "credits"
    QUEUE_SQLITE_PATH = str(INSTANCE_DIR / "queue.db")
    WORKER_THREADS = env_int("WORKER_THREADS", 2)
    JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 300)
    JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 8)
    # A pending job whose doorbell rang this long ago without a worker taking it is re-rung.
    JOB_SWEEP_AFTER_SECONDS = env_int("JOB_SWEEP_AFTER_SECONDS", 60)
    MAX_CONTENT_LENGTH = 1024 * 1024
    HISTORY_PAGE_SIZE = 25

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None

    # The local checkout sandbox stands in for Stripe when no key is set.
    SANDBOX_ENABLED = not STRIPE_SECRET_KEY
    # The sandbox's Stripe state, shared by the app and its worker process ("" = in memory).
    SANDBOX_STATE_PATH = env_str("SANDBOX_STATE_PATH") or str(INSTANCE_DIR / "stripe_sandbox.json")


class DevelopmentConfig(Config):
    pass


class TestConfig(Config):
    APP_ENV = "testing"
    TESTING = True
    SECRET_KEY = secrets.token_hex(32)  # per process: no key from the source signs anything
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    STRIPE_SECRET_KEY = "sk_test_123"
    STRIPE_WEBHOOK_SECRET = "whsec_test_secret"
    STRIPE_API_BASE = ""
    PUBLIC_BASE_URL = "https://credits.example.test"
    CURRENCY = "usd"
    CREDIT_UNIT_AMOUNT = 1
    CREDIT_PACKS = (500, 1000, 2500, 10000)
    MIN_PURCHASE_CREDITS = 50
    MAX_PURCHASE_CREDITS = 1_000_000
    CUSTOMER_PAYS_FEES = False
    CHECKOUT_INVOICES = False
    STRIPE_AUTOMATIC_TAX = False
    PLANS = "basic:1000:900:expire,pro:5000:3900:rollover"
    WTF_CSRF_ENABLED = False
    SANDBOX_ENABLED = False
    SANDBOX_STATE_PATH = ""
    RATELIMIT_ENABLED = False
    # Fast hashing keeps the suite quick; production uses werkzeug's scrypt default.
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
    REDIS_URL = ""
    PROXY_COUNT = 0
    MAIL_BACKEND = "locmem"
    MAIL_SERVER = ""
    MAIL_DEFAULT_SENDER = "Credits Store <billing@credits.example.test>"
    QUEUE_BACKEND = "memory"
    LOW_BALANCE_THRESHOLD = 100


class ProductionConfig(Config):
    APP_ENV = "production"
    SANDBOX_ENABLED = False
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    PREFERRED_URL_SCHEME = "https"
    REQUIRED = (
        "SECRET_KEY",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "DATABASE_URL",
        "MAIL_SERVER",
        "MAIL_DEFAULT_SENDER",
        "REDIS_URL",
        "PUBLIC_BASE_URL",
    )
    # With REDIS_URL required above, the queue is Redis (QUEUE_BACKEND follows it).
    MAIL_BACKEND = "smtp"
    # Requests for a Host other than PUBLIC_BASE_URL's get 400 (see prepare); extra names,
    # e.g. the address a load balancer's health check uses, come from TRUSTED_HOSTS.
    EXTRA_TRUSTED_HOSTS = tuple(h.strip() for h in env_str("TRUSTED_HOSTS").split(",") if h.strip())


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestConfig,
    "production": ProductionConfig,
}


class ConfigurationError(RuntimeError):
    pass


# (name, smallest value) of the whole-number settings.
_INT_SETTINGS = (
    ("CREDIT_UNIT_AMOUNT", 1),
    ("MIN_PURCHASE_CREDITS", 1),
    ("MAX_PURCHASE_CREDITS", 1),
    ("STRIPE_FEE_FIXED", 0),
    ("PROXY_COUNT", 0),
    ("LOW_BALANCE_THRESHOLD", 0),
)


def validate(config) -> None:
    """Refuse settings that would break pages later: ConfigurationError naming each variable.

    create_app calls this before serving anything. CREDIT_PACKS is not refused here:
    webapp.domain.catalog offers the good entries and reports each bad one (the app
    still starts and sells the rest).
    """
    from decimal import Decimal, InvalidOperation

    from limits import parse_many

    from webapp.domain.plans import parse_plans

    problems = []
    for name, least in _INT_SETTINGS:
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            problems.append(f"{name} must be a whole number of at least {least}, not {value!r}")
    low, high = config.get("MIN_PURCHASE_CREDITS"), config.get("MAX_PURCHASE_CREDITS")
    if isinstance(low, int) and isinstance(high, int) and high < low:
        problems.append(f"MAX_PURCHASE_CREDITS ({high}) is below MIN_PURCHASE_CREDITS ({low})")
    currency = str(config.get("CURRENCY") or "")
    if len(currency) != 3 or not currency.isalpha():
        problems.append(f"CURRENCY must be a three-letter ISO code, not {currency!r}")
    try:
        percent = Decimal(str(config.get("STRIPE_FEE_PERCENT")))
        if not (percent.is_finite() and 0 <= percent < 100):
            raise InvalidOperation
    except InvalidOperation:
        problems.append(
            "STRIPE_FEE_PERCENT must be a number from 0 to below 100 (like 2.9), "
            f"not {config.get('STRIPE_FEE_PERCENT')!r}"
        )
    for name in ("CHECKOUT_RATE_LIMIT", "USAGE_RATE_LIMIT"):
        try:
            parse_many(str(config.get(name) or ""))
        except ValueError:
            problems.append(
                f"{name} must be a rate limit like '20 per minute', not {config.get(name)!r}"
            )
    try:
        parse_plans(str(config.get("PLANS") or ""))
    except ValueError as exc:
        problems.append(f"PLANS: {exc}")
    if problems:
        raise ConfigurationError("Invalid settings: " + "; ".join(problems))


def config_for_environment() -> type[Config]:
    name = env_str("APP_ENV") or "development"
    if name not in CONFIGS:
        raise ConfigurationError(f"APP_ENV must be one of {', '.join(CONFIGS)}, not {name!r}")
    config_class = CONFIGS[name]
    if config_class is ProductionConfig:
        missing = [var for var in ProductionConfig.REQUIRED if not env_str(var)]
        if missing:
            raise ConfigurationError("Production refuses to start: set " + ", ".join(missing))
    else:
        refuse_live_settings(name, env_str("STRIPE_SECRET_KEY"), env_str("PUBLIC_BASE_URL"))
    return config_class


def refuse_live_settings(env_name: str, stripe_key: str, public_base_url: str) -> None:
    """Outside production, a live Stripe key or a public address means a deployment that
    forgot APP_ENV=production (and would run on development's settings): refuse."""
    if stripe_key.startswith(("sk_live_", "rk_live_")):
        raise ConfigurationError(
            f"APP_ENV={env_name} refuses to start with a live STRIPE_SECRET_KEY: "
            "set APP_ENV=production"
        )
    if public_base_url and not is_loopback_url(public_base_url):
        raise ConfigurationError(
            f"APP_ENV={env_name} refuses to start with a public PUBLIC_BASE_URL "
            f"({public_base_url}): set APP_ENV=production, or use a loopback address"
        )


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare(config: dict, instance_dir: Path | None = None) -> None:
    """Settings that follow from others. Production: Flask's TRUSTED_HOSTS from
    PUBLIC_BASE_URL, so a forged Host header never reaches a URL the app builds.
    Development: a random SECRET_KEY generated once into instance/, and a webhook secret
    derived from it (the sandbox signs its own deliveries with it)."""
    if config.get("APP_ENV") == "production" and config.get("PUBLIC_BASE_URL"):
        config["TRUSTED_HOSTS"] = [
            urlsplit(config["PUBLIC_BASE_URL"]).hostname,
            *config.get("EXTRA_TRUSTED_HOSTS", ()),
        ]
    if config.get("APP_ENV") != "development":
        return
    instance_dir = instance_dir or INSTANCE_DIR
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = instance_secret(instance_dir / DEV_SECRET_FILE)
    if not config.get("STRIPE_WEBHOOK_SECRET"):
        digest = hashlib.sha256(f"webhook:{config['SECRET_KEY']}".encode()).hexdigest()
        config["STRIPE_WEBHOOK_SECRET"] = f"whsec_{digest[:40]}"


def instance_secret(path: Path) -> str:
    """The secret in `path`, made (random, readable by the owner only) when missing."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    try:
        os.link(draft, path)  # complete file or nothing; fails when another process won
    except FileExistsError:
        secret = path.read_text().strip()
    finally:
        draft.unlink()
    return secret
