"""The whole journey in a real browser: Debian's headless Chromium driven by Playwright.

The app runs as it does for `make run` (development, SQLite upgraded by the migration)
in a subprocess on a free port, with a Stripe double served on a second port
(tests/e2e/stripe_server.py): Checkout and the portal live on another origin, as they
do at Stripe. Any console error (a CSP violation included) or page error fails the test.
Every page of the app is saved at desktop (1280x800) and phone (390x844) width under
test-artifacts/e2e/, must not scroll sideways, and must have no serious or critical
axe-core violation (WCAG 2.1 A and AA rules). axe-core comes from npm
(tests/e2e/package.json, `npm ci --prefix tests/e2e`) and is evaluated through the
DevTools protocol, which the page's CSP does not govern: the policy stays as served.

Run alone with `make e2e` (or `pytest -m e2e`). `.ci/run` installs Chromium and sets
CI_REQUIRE_E2E, so in CI a missing browser fails; elsewhere `make test` leaves this
test out with a loud notice when Chromium is missing.
"""

import contextlib
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

from tests.e2e.stripe_server import StripeServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--metrics-recording-only",
    "--no-first-run",
    "--mute-audio",
]
DESKTOP = {"width": 1280, "height": 800}
AXE_CHECKED: set[str] = set()
EXPECTED_404 = "/no-such-page"  # the pages checked with axe in this run
PHONE = {"width": 390, "height": 844}
PASSWORD = "journey-password-1"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password"  # webapp.cli.DEMO_ADMIN
WEBHOOK_SECRET = "whsec_e2e_double"
AXE = ROOT / "tests" / "e2e" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _require_browser():
    """No browser is a failure: `make test` leaves this test out (and says so) when the
    machine has no Chromium; `.ci/run` installs it, so CI always runs it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed (pip install -r requirements.txt)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing (npm ci --prefix tests/e2e)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_app(folder: Path, port: int, settings: dict[str, str]):
    """The app as `make run` serves it (development, migrated SQLite, demo users) with
    `settings` on top; returns the running process once /healthz answers."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("STRIPE_", "DATABASE_", "TEST_DATABASE", "REDIS_", "APP_", "PUBLIC_BASE_URL")
        )
    }
    env.update(
        {
            "APP_ENV": "development",
            "DATABASE_URL": f"sqlite:///{folder / 'e2e.db'}",
            "SECRET_KEY": "e2e-secret",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
    )
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run(
        [*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
    )
    # The demo user and admin, as `make run` makes them (ADMIN_EMAIL / ADMIN_PASSWORD).
    subprocess.run(
        [*flask, "users", "demo"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
    )
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [*flask, "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the app did not start: {(folder / 'server.log').read_text()}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def stripe_and_app(tmp_path_factory):
    """The Stripe double on one port and the app on another, with a fresh SQLite database."""
    _require_browser()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    stripe_server = StripeServer(f"{base}/webhooks/stripe", WEBHOOK_SECRET).start()
    try:
        server = _serve_app(
            tmp_path_factory.mktemp("e2e"),
            port,
            {
                "STRIPE_SECRET_KEY": "sk_test_e2e",
                "STRIPE_API_BASE": stripe_server.base,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            },
        )
        yield base, stripe_server
        server.terminate()
        server.wait(timeout=10)
    finally:
        stripe_server.stop()


@pytest.fixture(scope="module")
def live_server(stripe_and_app):
    return stripe_and_app[0]


@pytest.fixture(scope="module")
def sandbox_server(tmp_path_factory):
    """The app with no Stripe key at all: `make run`'s local checkout sandbox."""
    _require_browser()
    port = _free_port()
    server = _serve_app(tmp_path_factory.mktemp("e2e-sandbox"), port, {})
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


class Browser:
    """One page plus what the journey needs: console checks and screenshots.

    `fresh()` opens another browser context (its own cookies: another person) whose
    errors and screenshots join this one's.
    """

    def __init__(
        self, page, base: str, errors: list[str] | None = None, shots=None, new_context=None
    ):
        self.page, self.base = page, base
        self.errors: list[str] = [] if errors is None else errors
        self._shots = shots if shots is not None else [0]
        self._new_context = new_context
        self.dialogs: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc} ({page.url})"))
        page.on("dialog", self._accept_dialog)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        if self.page.url.endswith(EXPECTED_404) and "status of 404" in message.text:
            return  # the page asked for on purpose to see the 404 page
        self.errors.append(f"console: {message.text} ({self.page.url})")

    def _accept_dialog(self, dialog) -> None:
        """A confirm() before something that cannot be undone: recorded, then accepted."""
        self.dialogs.append(dialog.message)
        dialog.accept()

    @property
    def shots(self) -> int:
        return self._shots[0]

    def fresh(self) -> "Browser":
        """Another person in a fresh browser context (no cookies)."""
        return Browser(
            self._new_context().new_page(), self.base, self.errors, self._shots, self._new_context
        )

    def goto(self, path: str):
        response = self.page.goto(self.base + path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        return response

    def snap(self, name: str, *, ours: bool = True) -> None:
        """Screenshots of the current page at desktop and phone width; for the app's own
        pages, no sideways scroll and no serious or critical axe violation at either."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self._shots[0] += 1
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.screenshot(
                path=str(ARTIFACTS / f"{self.shots:02d}-{name}-{label}.png"), full_page=True
            )
            if not ours:
                continue
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                self.errors.append(f"{name} overflows {overflow}px sideways at {label} width")
            for problem in self.axe():
                self.errors.append(f"axe {name} at {label} width: {problem}")
        self.page.set_viewport_size(DESKTOP)
        if ours:
            AXE_CHECKED.add(name)

    def axe(self) -> list[str]:
        """Serious and critical axe-core violations of WCAG 2.1 A/AA on the current page."""
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text())
        violations = self.page.evaluate(
            """async (tags) => (await axe.run(document, {runOnly: {type: "tag", values: tags}}))
                 .violations.filter(v => v.impact === "serious" || v.impact === "critical")
                 .map(v => v.id + " (" + v.impact + "): "
                      + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "))""",
            AXE_TAGS,
        )
        return list(violations)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()

    def number(self, selector: str) -> int:
        return int(re.sub(r"[^\d-]", "", self.text(selector)))


@contextlib.contextmanager
def browser_on(base: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        contexts = []

        def new_context():
            context = chromium.new_context(viewport=DESKTOP)
            context.set_default_timeout(15_000)
            contexts.append(context)
            return context

        wrapper = Browser(new_context().new_page(), base, new_context=new_context)
        try:
            yield wrapper
        finally:
            for context in contexts:
                context.close()
            chromium.close()
    assert wrapper.errors == [], "\n".join(wrapper.errors)


@pytest.fixture
def browser(live_server):
    with browser_on(live_server) as wrapper:
        yield wrapper


@pytest.fixture
def sandbox_browser(sandbox_server):
    with browser_on(sandbox_server) as wrapper:
        yield wrapper


def sign_up(b: Browser, email: str) -> None:
    b.goto("/auth/signup")
    b.snap("signup")
    b.page.fill("input[name=email]", email)
    b.page.fill("input[name=password]", PASSWORD)
    b.page.click("button[type=submit]")
    b.page.wait_for_url(re.compile(r"/credits$"))


def checkout_at_stripe(b: Browser, stripe_server: StripeServer, selector: str, name: str):
    """Press a button that leads to Stripe: the browser must land on the double's origin."""
    b.page.click(selector)
    b.page.wait_for_url(re.compile(re.escape(stripe_server.base) + r"/sandbox/checkout/cs_"))
    b.snap(name, ours=False)


def buy_pack(b: Browser, stripe_server: StripeServer, credits: int) -> None:
    checkout_at_stripe(b, stripe_server, f"button[data-pack='{credits}']", "stripe-checkout")
    b.page.click("#sandbox-pay")
    b.page.wait_for_url(re.compile(r"/credits/success\?session_id=cs_"))


def test_sign_up_buy_a_pack_and_see_it_everywhere(browser, stripe_and_app):
    b, stripe_server = browser, stripe_and_app[1]
    b.goto("/")
    b.snap("home")
    b.goto("/auth/login")
    b.snap("login")

    sign_up(b, "journey@example.com")
    assert b.number("#balance") == 0 and b.number("#purchased") == 0 and b.number("#used") == 0
    b.snap("credits-empty")

    cancel_at_stripe(b, stripe_server)

    b.goto("/credits")
    buy_pack(b, stripe_server, 1000)
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
    revoke_a_spare_key(b)
    spent = spend_through_api(b.base, key, 250, "journey: render job")
    assert spent == {"balance": 750}
    b.goto("/credits")
    assert b.number("#balance") == 750 and b.number("#used") == 250
    assert b.number("#purchased") == 1000
    b.snap("credits-after-usage")

    subscribe_then_fail_a_renewal(b, stripe_server)

    admin = b.fresh()
    log_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    admin_pages(admin, "journey@example.com")
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
    payments = b.page.locator("#payments tbody").inner_text().lower()
    assert "partly refunded" in payments, payments
    b.snap("history-payments-after-refund")
    b.goto("/credits")
    # 1,000 bought + 1,000 plan credits + 100 from the admin - 250 used - 250 refunded
    assert b.number("#balance") == 1600 and b.number("#used") == 250
    b.snap("credits-final")

    missing = b.page.goto(b.base + EXPECTED_404)
    assert missing is not None and missing.status == 404
    b.snap("not-found")

    assert {
        "home",
        "login",
        "signup",
        "credits-empty",
        "cancel",
        "success",
        "history",
        "history-payments",
        "account",
        "account-new-key",
        "subscribed",
        "plan-past-due",
        "admin-users",
        "admin-user",
        "admin-purchases",
        "admin-purchase",
        "admin-events",
        "admin-subscriptions",
        "admin-dashboard",
        "not-found",
    } <= AXE_CHECKED


def cancel_at_stripe(b: Browser, stripe_server: StripeServer) -> None:
    """Cancel on Stripe's page: the session is expired at Stripe and shows as such."""
    checkout_at_stripe(b, stripe_server, "button[data-pack='500']", "stripe-checkout-cancel")
    b.page.click("#stripe-cancel")
    b.page.wait_for_url(re.compile(r"/credits/cancel\?purchase=\d+"))
    assert "Payment cancelled" in b.text("main")
    b.snap("cancel")
    sessions = [
        o for o in stripe_server.double.objects.values() if o.get("object") == "checkout.session"
    ]
    assert [s["status"] for s in sessions] == ["expired"]
    b.goto("/credits/history?tab=payments")
    assert "checkout expired" in b.page.locator("#payments tbody tr").first.inner_text().lower()


def subscribe_then_fail_a_renewal(b: Browser, stripe_server: StripeServer) -> None:
    b.goto("/credits")
    checkout_at_stripe(b, stripe_server, "button[data-plan='basic']", "stripe-subscription")
    b.page.click("#sandbox-pay")
    b.page.wait_for_url(re.compile(r"/credits/success\?session_id=cs_"))
    assert "Subscription started" in b.text("main")
    assert "credits are in your balance" in b.text("main")
    b.snap("subscribed")
    b.goto("/credits")
    assert b.number("#balance") == 1750 and "Basic" in b.text("#current-plan")
    b.page.click("#manage-billing")
    b.page.wait_for_url(re.compile(re.escape(stripe_server.base) + r"/sandbox/portal/"))
    b.snap("stripe-portal", ours=False)
    b.page.click("#portal-fail-renewal")
    b.page.wait_for_url(re.compile(r"/credits$"))
    assert "payment failed" in b.text("#plan-past-due").lower()
    assert b.page.locator("#plan-past-due button").inner_text() == "Update your card"
    assert b.page.locator("#plan-renewal").count() == 0
    b.snap("plan-past-due")


def admin_pages(admin: Browser, email: str) -> None:
    """Every admin list, a user's page and its action log after an adjustment."""
    admin.goto("/admin/users?q=journey")
    admin.snap("admin-users")
    admin.page.locator("#users tbody tr", has_text=email).locator("a").first.click()
    admin.page.wait_for_url(re.compile(r"/admin/users/\d+$"))
    admin.page.fill("#adjust input[name=credits]", "100")
    admin.page.fill("#adjust input[name=reason]", "Goodwill for the outage on the 3rd")
    admin.page.click("#adjust button[type=submit]")
    admin.page.wait_for_load_state()
    detail = admin.page.locator("#admin-actions .action-detail").first
    assert "Goodwill for the outage" in detail.inner_text()
    for size in (DESKTOP, PHONE):
        admin.page.set_viewport_size(size)
        box = detail.bounding_box()
        assert box is not None and box["width"] > 150 and box["height"] > 10, (size, box)
    admin.page.set_viewport_size(DESKTOP)
    admin.snap("admin-user")
    admin.goto("/admin/events")
    admin.snap("admin-events")
    admin.goto("/admin/subscriptions")
    assert "Basic" in admin.text("#subscriptions")
    admin.snap("admin-subscriptions")


def log_in(b: Browser, email: str, password: str) -> None:
    b.goto("/auth/login")
    b.page.fill("input[name=email]", email)
    b.page.fill("input[name=password]", password)
    b.page.click("button[type=submit]")
    b.page.wait_for_load_state()
    assert "/auth/login" not in b.page.url, b.text("main")


def create_api_key(b: Browser, label: str) -> str:
    """Create a key on /account; its secret is shown once, and not again on reload."""
    b.goto("/account")
    b.snap("account")
    b.page.fill("form.key-form input[name=label]", label)
    b.page.click("form.key-form button[type=submit]")
    b.page.wait_for_selector("#new-api-key")
    key = b.text("#new-api-key")
    assert key and " " not in key
    assert label in b.page.inner_text("main")
    box = b.page.locator("#new-api-key").bounding_box()
    b.snap("account-new-key")
    b.page.set_viewport_size(PHONE)
    phone_box = b.page.locator("#new-api-key").bounding_box()
    b.page.set_viewport_size(DESKTOP)
    assert box and phone_box and phone_box["width"] > 250, phone_box  # not a letter a line
    b.page.reload()
    assert b.page.locator("#new-api-key").count() == 0
    return key


def revoke_a_spare_key(b: Browser) -> None:
    """Revoke asks first (a confirm dialog), then the key is listed as revoked."""
    b.page.fill("form.key-form input[name=label]", "spare")
    b.page.click("form.key-form button[type=submit]")
    b.page.wait_for_selector("#new-api-key")
    row = b.page.locator("#key-list tbody tr", has_text="spare")
    row.locator("button", has_text="Revoke").click()
    b.page.wait_for_load_state()
    assert b.dialogs and "Revoke the key" in b.dialogs[-1]
    assert "Revoked" in b.page.locator("#key-list tbody tr", has_text="spare").inner_text()


def spend_through_api(base: str, key: str, credits: int, description: str) -> dict:
    """POST /api/v1/usage as a script would: no browser, no cookies."""
    body = json.dumps({"credits": credits, "description": description}).encode()
    request = urllib.request.Request(
        f"{base}/api/v1/usage",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Idempotency-Key": "journey-usage-1",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def find_purchase(admin: Browser, email: str) -> str:
    """The admin's purchase list shows the user's purchase; returns its detail path."""
    admin.goto("/admin/purchases?status=paid")
    row = admin.page.locator("#purchases tbody tr", has_text=email).first
    assert "paid" in row.inner_text().lower()
    admin.snap("admin-purchases")
    row.locator("a").first.click()
    admin.page.wait_for_url(re.compile(r"/admin/purchases/\d+$"))
    assert email in admin.text("#purchase")
    return admin.page.url.removeprefix(admin.base)


def refund_part(admin: Browser, purchase_path: str, amount: str) -> None:
    """Refund through the form (it asks first); Stripe's double then delivers
    charge.refunded on its own, a moment after answering, as Stripe does."""
    admin.snap("admin-purchase")
    admin.page.fill("#refund input[name=amount]", amount)
    admin.page.click("#refund button[type=submit]")
    admin.page.wait_for_url(re.compile(re.escape(purchase_path) + "$"))
    assert admin.dialogs and "refund" in admin.dialogs[-1].lower()
    deadline = time.monotonic() + 15
    while "partly refunded" not in admin.text("#purchase").lower():
        assert time.monotonic() < deadline, admin.text("#purchase")
        time.sleep(0.3)
        admin.page.reload()
    admin.snap("admin-purchase-refunded")


def test_the_local_sandbox_buys_and_subscribes_in_a_browser(sandbox_browser):
    """`make run` with no keys: its own checkout and portal pages, checked like the rest."""
    b = sandbox_browser
    sign_up(b, "sandbox@example.com")
    b.page.click("button[data-pack='500']")
    b.page.wait_for_url(re.compile(r"/sandbox/checkout/cs_"))
    b.snap("sandbox-checkout")
    b.page.click("#sandbox-pay")
    b.page.wait_for_url(re.compile(r"/credits/success\?session_id=cs_"))
    assert "500 credits added" in b.text("#purchase-state")
    b.goto("/credits")
    b.page.click("button[data-plan='pro']")
    b.page.wait_for_url(re.compile(r"/sandbox/checkout/cs_"))
    b.snap("sandbox-subscription-checkout")
    b.page.click("#sandbox-pay")
    b.page.wait_for_url(re.compile(r"/credits/success\?session_id=cs_"))
    b.goto("/credits")
    assert b.number("#balance") == 5500
    b.page.click("#manage-billing")
    b.page.wait_for_url(re.compile(r"/sandbox/portal/"))
    b.snap("sandbox-portal")
