"""The credits store: buy prepaid credits through Stripe Checkout, spend them through an API."""

import math
import time

import sqlalchemy as sa
from flask import Flask, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from webapp.config import BASE_DIR, Config, config_for_environment, prepare, validate
from webapp.domain.sql import MAX_INT
from webapp.domain.text import strip_controls
from webapp.extensions import csrf, db, limiter, login_manager, mail, migrate
from webapp.hardening import register_input_rules, register_logging, register_security


def create_app(config_class: type[Config] | None = None) -> Flask:
    config_class = config_class or config_for_environment()
    app = Flask(
        __name__, static_folder=str(BASE_DIR / "static"), instance_path=str(BASE_DIR / "instance")
    )
    app.config.from_object(config_class)
    prepare(app.config)
    check_settings(app)
    app.url_map.converters["int"] = BoundedInt
    register_extensions(app)
    register_stripe(app)
    register_background(app)
    register_input_rules(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_cli(app)
    register_proxy(app)
    register_security(app)
    register_logging(app)
    return app


class BoundedInt(IntegerConverter):
    """`<int:...>` in every route (all INTEGER primary keys): larger ids are simply not
    found (404), never a database error."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_INT)
        super().__init__(map, *args, **kwargs)


def check_settings(app: Flask) -> None:
    """Bad settings stop the app here, naming the variable, not as a 500 on some page."""
    validate(app.config)


class CookieSessions(SecureCookieSessionInterface):
    """Skip the signing work where there is nothing to verify: Stripe's webhook deliveries
    never carry a session, and API calls (Bearer keys) and first visits bring no cookie."""

    def open_session(self, app: Flask, request):
        if request.path.startswith("/webhooks/"):
            return self.null_session_class()
        if self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def register_extensions(app: Flask) -> None:
    app.session_interface = CookieSessions()
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        (BASE_DIR / "instance").mkdir(exist_ok=True)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    with app.app_context():
        configure_sqlite(db.engine)

    from webapp.domain.users import user_for_session

    # The session holds "<user id>.<session version>": every request checks the version,
    # so logging out or changing the password ends copied cookies too.
    login_manager.user_loader(user_for_session)


def register_background(app: Flask) -> None:
    """Mail (Flask-Mailman) and the job queue's doorbell (Huey, see webapp/worker.py)."""
    from webapp import worker
    from webapp.domain import letters, mailer  # noqa: F401  (register mail and its builders)

    mail.init_app(app)
    worker.init_app(app)


def configure_sqlite(engine: sa.Engine) -> None:
    """SQLite: foreign keys on, and each transaction takes the write lock at BEGIN.

    Without BEGIN IMMEDIATE, a read followed by a write in one transaction could act on
    a stale read; with it, SQLite transactions run one at a time, like row locks would.
    """
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def register_stripe(app: Flask) -> None:
    """Give the gateway its Stripe client: configured keys, or the sandbox's in-process double."""
    from webapp.domain import stripe_gateway

    http_client, api_key = app.config["STRIPE_HTTP_CLIENT"], app.config["STRIPE_SECRET_KEY"]
    if not api_key and app.config["SANDBOX_ENABLED"] and app.config["APP_ENV"] != "production":
        from webapp.stripe_double import sandbox_double

        api_key, http_client = "sk_test_sandbox", sandbox_double(app)
    stripe_gateway.init_app(app, api_key, http_client)


def register_blueprints(app: Flask) -> None:
    from webapp import account, admin, api, auth, billing, credits, webhooks
    from webapp.api.openapi import register_api

    for blueprint_package in (auth, credits, webhooks, account, admin, billing):
        app.register_blueprint(blueprint_package.bp)
    register_api(app, api.bp)
    if app.config["APP_ENV"] == "development":
        from webapp import dev

        app.register_blueprint(dev.bp)
    if app.config["SANDBOX_ENABLED"] and app.config["APP_ENV"] != "production":
        from webapp import sandbox

        app.register_blueprint(sandbox.bp)

    @app.get("/")
    def home():
        return render_template("home.html")

    @app.get("/healthz")
    def healthz():
        try:
            db.session.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            db.session.rollback()
            return jsonify(status="unavailable"), 503
        return jsonify(status="ok")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if isinstance(error, SecurityError):  # an untrusted Host: no URL can be built
            return "Bad Request: unknown host.", 400, {"Content-Type": "text/plain"}
        retry_after = _retry_after_seconds() if error.code == 429 else None
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        if request.path.startswith(("/api/", "/webhooks/")):
            name = (error.name or "error").lower().replace(" ", "_")
            extra = {"retry_after": retry_after} if retry_after else {}
            return jsonify(error=name, message=error.description, **extra), error.code, headers
        template = f"errors/{error.code}.html" if error.code in (403, 404) else "errors/error.html"
        return render_template(template, error=error, retry_after=retry_after), error.code, headers

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        app.logger.exception("unhandled error")
        db.session.rollback()
        if request.path.startswith("/api/"):
            return jsonify(error="internal_error"), 500
        return render_template("errors/error.html", error=None), 500


def _retry_after_seconds() -> int:
    """Seconds until the rate limit that refused this request lets it through again."""
    limit = limiter.current_limit
    if limit is None:
        return 60
    return max(1, math.ceil(limit.reset_at - time.time()))


def register_template_helpers(app: Flask) -> None:
    from webapp.domain.pricing import format_money, minor_units_per_major

    app.jinja_env.filters["money"] = format_money
    app.jinja_env.globals["minor_units_per_major"] = minor_units_per_major
    app.jinja_env.filters["credits"] = lambda n: f"{n:,}"
    app.jinja_env.filters["signed"] = lambda n: f"{n:+,}"
    app.jinja_env.filters["duration"] = duration_words
    # Whatever a template prints loses control and bidi-override characters, so stored
    # text (a key label, a usage description) cannot disguise itself on any page.
    app.jinja_env.finalize = _printable
    app.jinja_env.globals["sandbox_enabled"] = app.config["SANDBOX_ENABLED"]
    app.jinja_env.globals["status_words"] = lambda status: STATUS_WORDS.get(status, status)
    app.jinja_env.globals["kind_words"] = lambda kind: KIND_WORDS.get(kind, kind)

    @app.context_processor
    def navigation():
        from flask_login import current_user

        def nav_links() -> list[tuple[str, str]]:
            links = [
                (endpoint, label) for endpoint, label in NAV_LINKS if endpoint in app.view_functions
            ]
            if not getattr(current_user, "is_admin", False):
                links = [link for link in links if not link[0].startswith("admin.")]
            return links

        return {"nav_links": nav_links}


def _printable(value):
    if isinstance(value, Markup):
        return Markup(strip_controls(value))
    return strip_controls(value) if isinstance(value, str) else value


def duration_words(seconds: int) -> str:
    """45 -> "45 seconds", 60 -> "1 minute", 150 -> "3 minutes" (rounded up)."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(minutes / 60)
    return f"{hours} hour{'s' if hours != 1 else ''}"


NAV_LINKS = (("account.index", "Account"), ("admin.dashboard", "Admin"))

STATUS_WORDS = {
    "pending": "Waiting for payment",
    "processing": "Payment processing",
    "paid": "Paid",
    "failed": "Payment failed",
    "expired": "Checkout expired",
    "refunded": "Refunded",
    "partially_refunded": "Partly refunded",
    "disputed": "Disputed",
    "needs_review": "Under review",
    "needs_action": "Waiting for the card holder",
}
KIND_WORDS = {
    "purchase": "Purchase",
    "usage": "Usage",
    "refund": "Refund",
    "dispute": "Dispute",
    "dispute_reversal": "Credits returned",
    "adjustment": "Adjustment",
    "grant": "Plan credits",
    "expiry": "Expired",
}


def register_cli(app: Flask) -> None:
    from webapp.cli import register

    register(app)


def register_proxy(app: Flask) -> None:
    count = app.config["PROXY_COUNT"]
    if count:
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count, x_prefix=count
        )
