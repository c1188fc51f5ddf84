"""Auto-recharge in a real browser, with the app and its worker as `make run` starts them.

Save a sandbox test card, turn auto-recharge on, spend below the threshold through the
API, and see the worker (another process) refill the balance and mail the receipt.
"""

import os
import re
import subprocess
import sys
import time

import pytest

from tests.e2e.test_journey import (  # noqa: F401  (fixtures)
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    ROOT,
    Browser,
    _free_port,
    _require_browser,
    sign_up,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app_and_worker(tmp_path_factory):
    _require_browser()
    import urllib.request

    folder = tmp_path_factory.mktemp("e2e-recharge")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "DATABASE_", "TEST_DATABASE", "REDIS_", "APP_"))
    }
    env.update(
        {
            "APP_ENV": "development",
            "DATABASE_URL": f"sqlite:///{folder / 'e2e.db'}",
            "SECRET_KEY": "e2e-secret",
            "PYTHONUNBUFFERED": "1",
            "SANDBOX_STATE_PATH": str(folder / "stripe.json"),
        }
    )
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run(
        [*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env["PUBLIC_BASE_URL"] = base
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [*flask, "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [*flask, "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                worker.kill()
                pytest.fail(f"the app did not start: {(folder / 'server.log').read_text()}")
            time.sleep(0.2)
    yield base
    for process in (worker, server):
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser(app_and_worker):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = chromium.new_context(viewport=DESKTOP)
        context.set_default_timeout(15_000)
        wrapper = Browser(context.new_page(), app_and_worker)
        try:
            yield wrapper
        finally:
            context.close()
            chromium.close()
    assert wrapper.errors == [], "\n".join(wrapper.errors)


def api(b: Browser, method: str, path: str, body: dict | None = None) -> dict:
    """The JSON API from the logged-in page (session cookie plus the CSRF header)."""
    return b.page.evaluate(
        """async ([method, path, body]) => {
            const token = document.querySelector('input[name=csrf_token]').value;
            const response = await fetch(path, {method, headers: {
                'Content-Type': 'application/json', 'X-CSRFToken': token},
                body: body ? JSON.stringify(body) : undefined});
            return {status: response.status, body: await response.json()};
        }""",
        [method, path, body],
    )


def balance(b: Browser) -> int:
    return api(b, "GET", "/api/v1/balance")["body"]["balance"]


def test_save_a_card_enable_spend_and_the_worker_refills(browser):
    b = browser
    sign_up(b, "recharge@example.com")
    b.page.click("button[data-pack='1000']")
    b.page.wait_for_url(re.compile(r"/sandbox/checkout/cs_"))
    b.page.click("#sandbox-pay")
    b.page.wait_for_url(re.compile(r"/credits/success\?session_id=cs_"))

    b.goto("/credits")
    b.page.click("#save-card")
    b.page.wait_for_url(re.compile(r"/sandbox/checkout/cs_"))
    b.snap("sandbox-save-card")
    b.page.check("#sandbox-card-4242")
    b.page.click("#sandbox-pay")
    b.page.wait_for_url(re.compile(r"/credits\?card_session=cs_"))
    assert "Visa •••• 4242" in b.text("#saved-card")

    b.page.check("#auto-recharge-enabled")
    b.page.fill("#auto-recharge-form input[name=threshold]", "300")
    b.page.fill("#auto-recharge-form input[name=amount]", "500")
    b.page.click("#auto-recharge-form button[type=submit]")
    b.page.wait_for_url(re.compile(r"/credits$"))
    b.snap("auto-recharge-on")
    assert api(b, "GET", "/api/v1/balance")["body"]["auto_recharge"] == {
        "enabled": True,
        "threshold": 300,
        "amount": 500,
    }

    spent = api(b, "POST", "/api/v1/usage", {"credits": 800, "description": "e2e"})
    assert spent == {"status": 200, "body": {"balance": 200}}

    deadline = time.monotonic() + 60
    while balance(b) != 700:
        assert time.monotonic() < deadline, "the worker never refilled the balance"
        time.sleep(0.5)
    b.goto("/credits")
    b.snap("auto-recharge-refilled")
    deadline = time.monotonic() + 60
    while True:
        b.goto("/dev/mail")
        if "auto-recharge added 500 credits" in b.page.content():
            break
        assert time.monotonic() < deadline, "no receipt mail in the outbox"
        time.sleep(0.5)
