"""Flask extensions, created unbound and initialised in create_app."""

import sqlalchemy as sa
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mailman import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()


class ViewLimiter(Limiter):
    """Flask-Limiter with the limits its view decorators name, and only those.

    A decorated view checks its own limits when it is called. The extension also checks
    every request in a `before_request` hook, for default, application, meta, blueprint
    and in-memory fallback limits; this app declares none, and that hook cost a quarter of
    a millisecond on every request, the webhook's included. So it is taken out, and the
    settings and blueprint limits that would need it are refused rather than ignored."""

    APP_WIDE_SETTINGS = (
        "RATELIMIT_DEFAULT",
        "RATELIMIT_APPLICATION",
        "RATELIMIT_META",
        "RATELIMIT_IN_MEMORY_FALLBACK",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit_manager.add_blueprint_limit = self._refuse_blueprint_limit

    @staticmethod
    def _refuse_blueprint_limit(blueprint: str, _limit) -> None:
        raise RuntimeError(
            f"a limit on blueprint {blueprint!r} would never be checked: "
            "decorate its views with @limiter.limit instead"
        )

    def init_app(self, app) -> None:
        app_wide = [name for name in self.APP_WIDE_SETTINGS if app.config.get(name)]
        if app_wide:
            raise RuntimeError(
                f"{', '.join(app_wide)}: limits apply per view here (@limiter.limit); "
                "app-wide limits are not checked"
            )
        super().init_app(app)
        hooks = app.before_request_funcs.get(None, [])
        if self._check_request_limit in hooks:  # absent when RATELIMIT_ENABLED is off
            hooks.remove(self._check_request_limit)


limiter = ViewLimiter(key_func=get_remote_address)


def caller_key() -> str:
    """Rate-limit key of whoever is calling: the API key (a hash of the Bearer secret, no
    database read), else the logged-in user, else the address."""
    import hashlib

    from flask import request
    from flask_login import current_user

    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return "key:" + hashlib.sha256(secret.strip().encode()).hexdigest()[:32]
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "ip:" + get_remote_address()


def configured_limit(name: str):
    """A limit read from the app's configuration when the request comes (tests change it)."""
    from flask import current_app

    return lambda: current_app.config[name]
