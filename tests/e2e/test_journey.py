"""The whole journey in a real browser: Debian's headless Chromium driven by Playwright.

The app runs as it does for `make run` (development, SQLite upgraded by the migration,
the checkout sandbox instead of Stripe) in a subprocess on a free port. Any console error
(a CSP violation included) or page error fails the test. Every page is saved at desktop
and phone width under test-artifacts/e2e/.

Run alone with `make e2e` (or `pytest -m e2e`). `.ci/run` installs Chromium and sets
CI_REQUIRE_E2E, so in CI a missing browser fails; elsewhere `make test` leaves this
test out with a loud notice when Chromium is missing.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-default-apps", "--disable-extensions", "--disable-sync",
                 "--metrics-recording-only", "--no-first-run", "--mute-audio"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "journey-password-1"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password"  # webapp.cli.DEMO_ADMIN


def _require_browser():
    """No browser is a failure: `make test` leaves this test out (and says so) when the
    machine has no Chromium; `.ci/run` installs it, so CI always runs it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed (pip install -r requirements.txt)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """The app on http://127.0.0.1:PORT with a fresh SQLite database and the sandbox."""
    _require_browser()
    folder = tmp_path_factory.mktemp("e2e")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("STRIPE_", "DATABASE_", "TEST_DATABASE", "REDIS_", "APP_"))}
    env.update({"APP_ENV": "development", "DATABASE_URL": f"sqlite:///{folder / 'e2e.db'}",
                "SECRET_KEY": "e2e-secret", "PYTHONUNBUFFERED": "1"})
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    # The demo user and admin, as `make run` makes them (ADMIN_EMAIL / ADMIN_PASSWORD).
    subprocess.run([*flask, "users", "demo"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    port = _free_port()
    log = (folder / "server.log").open("w")
    server = subprocess.Popen([*flask, "run", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the app did not start: {(folder / 'server.log').read_text()}")
            time.sleep(0.2)
    yield base
    server.terminate()
    server.wait(timeout=10)


class Browser:
    """One page plus what the journey needs: console checks and screenshots.

    `fresh()` opens another browser context (its own cookies: another person) whose
    errors and screenshots join this one's.
    """

    def __init__(self, page, base: str, errors: list[str] | None = None, shots=None,
                 new_context=None):
        self.page, self.base = page, base
        self.errors: list[str] = [] if errors is None else errors
        self._shots = shots if shots is not None else [0]
        self._new_context = new_context
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"console: {msg.text} ({page.url})"))
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc} ({page.url})"))

    @property
    def shots(self) -> int:
        return self._shots[0]

    def fresh(self) -> "Browser":
        """Another person in a fresh browser context (no cookies)."""
        return Browser(self._new_context().new_page(), self.base, self.errors, self._shots,
                       self._new_context)

    def goto(self, path: str):
        response = self.page.goto(self.base + path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        return response

    def snap(self, name: str) -> None:
        """Screenshots of the current page at desktop and phone width."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self._shots[0] += 1
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.screenshot(path=str(ARTIFACTS / f"{self.shots:02d}-{name}-{label}.png"),
                                 full_page=True)
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                self.errors.append(f"{name} overflows {overflow}px sideways at {label} width")
        self.page.set_viewport_size(DESKTOP)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()

    def number(self, selector: str) -> int:
        return int(re.sub(r"[^\d-]", "", self.text(selector)))


@pytest.fixture
def browser(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        contexts = []

        def new_context():
            context = chromium.new_context(viewport=DESKTOP)
            context.set_default_timeout(15_000)
            contexts.append(context)
            return context

        wrapper = Browser(new_context().new_page(), live_server, new_context=new_context)
        try:
            yield wrapper
        finally:
            for context in contexts:
                context.close()
            chromium.close()
    assert wrapper.errors == [], "\n".join(wrapper.errors)


def sign_up(b: Browser, email: str) -> None:
    b.goto("/auth/signup")
    b.snap("signup")
    b.page.fill("input[name=email]", email)
    b.page.fill("input[name=password]", PASSWORD)
    b.page.click("button[type=submit]")
    b.page.wait_for_url(re.compile(r"/credits$"))


def buy_pack_in_sandbox(b: Browser, credits: int) -> None:
    b.page.click(f"button[data-pack='{credits}']")
    b.page.wait_for_url(re.compile(r"/sandbox/checkout/cs_"))
    b.snap("sandbox-checkout")
    b.page.click("#sandbox-pay")
    b.page.wait_for_url(re.compile(r"/credits/success\?session_id=cs_"))


def test_sign_up_buy_a_pack_and_see_it_everywhere(browser):
    b = browser
    b.goto("/")
    b.snap("home")

    sign_up(b, "journey@example.com")
    assert b.number("#balance") == 0 and b.number("#purchased") == 0 and b.number("#used") == 0
    b.snap("credits-empty")

    buy_pack_in_sandbox(b, 1000)
    assert b.page.locator("#purchase-state").get_attribute("data-status") == "paid"
    assert "1,000 credits added" in b.text("#purchase-state")
    b.snap("success")

    b.goto("/credits")
    assert b.number("#balance") == 1000 and b.number("#purchased") == 1000
    b.snap("credits-after-purchase")

    b.goto("/credits/history")
    first_row = b.page.locator("#ledger tbody tr").first.inner_text().lower()
    assert "purchase" in first_row and "+1,000" in first_row and "paid" in first_row
    b.snap("history")

    b.goto("/credits/history?tab=payments")
    payment = b.page.locator("#payments tbody tr").first.inner_text().lower()
    assert "1,000" in payment and "10.00" in payment and "paid" in payment
    b.snap("history-payments")

    key = create_api_key(b, "journey script")
    spent = spend_through_api(b.base, key, 250, "journey: render job")
    assert spent == {"balance": 750}
    b.goto("/credits")
    assert b.number("#balance") == 750 and b.number("#used") == 250
    assert b.number("#purchased") == 1000
    b.snap("credits-after-usage")

    admin = b.fresh()
    log_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    purchase_path = find_purchase(admin, "journey@example.com")
    refund_part(admin, purchase_path, "2.50")
    assert "2.50" in admin.text("#refunded")
    assert "250 credits taken back" in admin.text("#refunded")
    admin.goto("/admin/")
    admin.snap("admin-dashboard")

    b.goto("/credits/history")
    first_row = b.page.locator("#ledger tbody tr").first.inner_text().lower()
    assert "refund" in first_row and "-250" in first_row, first_row
    b.snap("history-after-refund")
    b.goto("/credits/history?tab=payments")
    payment = b.page.locator("#payments tbody tr").first.inner_text().lower()
    assert "partly refunded" in payment, payment
    b.snap("history-payments-after-refund")
    b.goto("/credits")
    assert b.number("#balance") == 500 and b.number("#used") == 250


def log_in(b: Browser, email: str, password: str) -> None:
    b.goto("/auth/login")
    b.page.fill("input[name=email]", email)
    b.page.fill("input[name=password]", password)
    b.page.click("button[type=submit]")
    b.page.wait_for_load_state()
    assert "/auth/login" not in b.page.url, b.text("main")


def create_api_key(b: Browser, label: str) -> str:
    """Create a key on /account; its secret is shown once."""
    b.goto("/account")
    b.snap("account")
    b.page.fill("form.key-form input[name=label]", label)
    b.page.click("form.key-form button[type=submit]")
    b.page.wait_for_selector("#new-api-key")
    key = b.text("#new-api-key")
    assert key and " " not in key
    assert label in b.page.inner_text("main")
    b.snap("account-new-key")
    return key


def spend_through_api(base: str, key: str, credits: int, description: str) -> dict:
    """POST /api/v1/usage as a script would: no browser, no cookies."""
    body = json.dumps({"credits": credits, "description": description}).encode()
    request = urllib.request.Request(
        f"{base}/api/v1/usage", data=body, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                 "Idempotency-Key": "journey-usage-1"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def find_purchase(admin: Browser, email: str) -> str:
    """The admin's purchase list shows the user's purchase; returns its detail path."""
    admin.goto("/admin/purchases")
    row = admin.page.locator("#purchases tbody tr", has_text=email).first
    assert "paid" in row.inner_text().lower()
    admin.snap("admin-purchases")
    row.locator("a").first.click()
    admin.page.wait_for_url(re.compile(r"/admin/purchases/\d+$"))
    assert email in admin.text("#purchase")
    return admin.page.url.removeprefix(admin.base)


def refund_part(admin: Browser, purchase_path: str, amount: str) -> None:
    """Refund through the form; the sandbox then delivers Stripe's charge.refunded."""
    admin.snap("admin-purchase")
    admin.page.fill("#refund input[name=amount]", amount)
    admin.page.click("#refund button[type=submit]")
    admin.page.wait_for_url(re.compile(re.escape(purchase_path) + "$"))
    assert "partly refunded" in admin.text("#purchase").lower()
    admin.snap("admin-purchase-refunded")
