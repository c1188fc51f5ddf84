"""Defect 8: bad settings stop the app at startup with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_config
from webapp import create_app
from webapp.config import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "overrides, variable",
    [
        ({"STRIPE_FEE_PERCENT": "abc"}, "STRIPE_FEE_PERCENT"),
        ({"STRIPE_FEE_PERCENT": "100"}, "STRIPE_FEE_PERCENT"),
        ({"STRIPE_FEE_PERCENT": "-1"}, "STRIPE_FEE_PERCENT"),
        ({"STRIPE_FEE_PERCENT": "NaN"}, "STRIPE_FEE_PERCENT"),
        ({"STRIPE_FEE_FIXED": "x"}, "STRIPE_FEE_FIXED"),
        ({"STRIPE_FEE_FIXED": -5}, "STRIPE_FEE_FIXED"),
        ({"CREDIT_UNIT_AMOUNT": 0}, "CREDIT_UNIT_AMOUNT"),
        ({"MIN_PURCHASE_CREDITS": 500, "MAX_PURCHASE_CREDITS": 100}, "MAX_PURCHASE_CREDITS"),
        ({"CURRENCY": "dollars"}, "CURRENCY"),
        ({"PLANS": "basic:many:900:expire"}, "PLANS"),
        ({"USAGE_RATE_LIMIT": "lots"}, "USAGE_RATE_LIMIT"),
    ],
)
def test_a_bad_setting_is_refused_at_startup_naming_it(database_url, overrides, variable):
    with pytest.raises(ConfigurationError, match=variable):
        create_app(make_config(database_url, **overrides))


def test_price_ids_are_valid_pack_entries(database_url):
    app = create_app(make_config(database_url, CREDIT_PACKS=(500, "price_1Abc", "price_2Def")))
    assert app.config["CREDIT_PACKS"] == (500, "price_1Abc", "price_2Def")


@pytest.mark.parametrize(
    "variable, value",
    [
        ("STRIPE_FEE_PERCENT", "2,9"),
        ("STRIPE_FEE_FIXED", "30c"),
        ("MAX_PURCHASE_CREDITS", "1e6"),
    ],
)
def test_the_app_process_exits_with_a_message_naming_the_variable(variable, value, tmp_path):
    env = {
        **os.environ,
        "APP_ENV": "development",
        variable: value,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert variable in result.stderr and "Traceback" not in result.stderr
