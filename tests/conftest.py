import os
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import stripe_fakes
from webapp import create_app
from webapp.config import TestConfig
from webapp.domain import users
from webapp.extensions import db

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])

# Tests with several processes: they run only on the PostgreSQL backend. Without
# TEST_DATABASE_URL they are deselected (.ci/run always sets it and insists on it).
requires_postgres = pytest.mark.postgres_only


def pytest_sessionstart(session):
    if os.environ.get("CI_REQUIRE_POSTGRES") and not POSTGRES_URL:
        raise pytest.UsageError("CI_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not")


def pytest_collection_modifyitems(config, items):
    def sqlite_copy(item) -> bool:
        params = getattr(item, "callspec", None)
        backend = params.params.get("database_url") if params else None
        # "" too: a test parametrized with POSTGRES_URL itself when it is not set
        return backend == "sqlite" or (not backend and not POSTGRES_URL)

    dropped = [i for i in items if i.get_closest_marker("postgres_only") and sqlite_copy(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


@pytest.fixture(scope="session")
def sqlite_url():
    folder = tempfile.mkdtemp(prefix="credits-tests-")
    return f"sqlite:///{Path(folder) / 'test.db'}"


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, sqlite_url):
    return sqlite_url if request.param == "sqlite" else POSTGRES_URL


@pytest.fixture(scope="session")
def schema_ready():
    """Database URLs whose schema has been created in this test session."""
    return set()


def make_config(database_url: str, **overrides) -> type[TestConfig]:
    attrs = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "STRIPE_HTTP_CLIENT": stripe_fakes.new_double(),
        **overrides,
    }
    return type("TestRunConfig", (TestConfig,), attrs)


@pytest.fixture
def config_overrides():
    """Tests override configuration by redefining this fixture or updating the dict."""
    return {}


@pytest.fixture
def app(database_url, schema_ready, config_overrides):
    app = create_app(make_config(database_url, **config_overrides))
    with app.app_context():
        if database_url not in schema_ready:
            db.drop_all()
            db.create_all()
            schema_ready.add(database_url)
        else:
            empty_all_tables()
        yield app
        db.session.remove()
        db.engine.dispose()


def empty_all_tables() -> None:
    tables = [table.name for table in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(sa.text(f"DELETE FROM {table}"))
    db.session.commit()


@pytest.fixture
def stripe_double(app):
    return app.config["STRIPE_HTTP_CLIENT"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def user(app):
    return users.create_user("buyer@example.com", "correct-horse")


@pytest.fixture
def admin(app):
    return users.create_user("boss@example.com", "correct-horse", is_admin=True)


def login(client, email: str, password: str = "correct-horse"):
    return client.post("/auth/login", data={"email": email, "password": password})


@pytest.fixture
def logged_in(client, user):
    login(client, user.email)
    return client
