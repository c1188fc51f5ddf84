import functools

import pytest
from werkzeug.security import generate_password_hash


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """These tests create and log in several users each; scrypt's cost buys nothing here."""
    monkeypatch.setattr("webapp.models.user.generate_password_hash",
                        functools.partial(generate_password_hash, method="pbkdf2:sha256:1000"))
