"""The Stripe double served over HTTP on a port of its own: another origin, as Stripe is.

The app under test reaches it as its Stripe API (`STRIPE_API_BASE`), and the browser is
redirected to its Checkout and portal pages, so the page's security policy must let a
form's redirect leave for a host it has never heard of. Events are signed like Stripe's
and POSTed to the app's webhook endpoint: a payment before the redirect back, events
Stripe sends on its own (a refund's `charge.refunded`) just after the API call.
"""

import threading
import time
import urllib.request
from html import escape

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from webapp.stripe_double import StripeDouble, minimal_templates
from webapp.stripe_double.events import deliver_event

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>{title}</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""


class StripeServer:
    def __init__(self, webhook_url: str, webhook_secret: str):
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self.httpd = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.double = StripeDouble(minimal_templates, checkout_base=self.base)
        self.double.pending_events = []
        self.delivered: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "StripeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()

    # --- HTTP

    def wsgi(self, environ, start_response):
        return self.route(Request(environ))(environ, start_response)

    def route(self, request: Request) -> Response:
        if request.path.startswith("/v1/"):
            return self.api(request)
        parts = request.path.strip("/").split("/")
        if parts[:2] == ["sandbox", "checkout"] and len(parts) == 3:
            return self.checkout_page(parts[2])
        if parts[:2] == ["sandbox", "checkout"] and len(parts) == 4 and parts[3] == "pay":
            return self.pay(parts[2])
        if parts[:2] == ["sandbox", "portal"] and len(parts) == 3:
            return self.portal_page(parts[2])
        if parts[:2] == ["sandbox", "portal"] and len(parts) == 4 and parts[3] == "fail-renewal":
            return self.fail_renewal(parts[2])
        return Response("not found", 404)

    def api(self, request: Request) -> Response:
        body, status, headers = self.double.request(
            request.method.lower(),
            request.url,
            dict(request.headers),
            request.get_data(as_text=True) if request.method == "POST" else None,
        )
        events = self.double.take_pending_events()
        if events:  # sent by Stripe on its own, after answering the call that caused them
            threading.Thread(target=self._deliver_later, args=(events,), daemon=True).start()
        return Response(body, status, headers, content_type="application/json")

    def _deliver_later(self, events) -> None:
        time.sleep(0.2)
        for event_type, obj in events:
            self.deliver(event_type, obj)

    def deliver(self, event_type: str, obj: dict) -> int:
        status = deliver_event(event_type, obj, secret=self.webhook_secret, post=self._post)
        self.delivered.append((event_type, status))
        return status

    def _post(self, payload: str, headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            self.webhook_url, data=payload.encode(), method="POST", headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    # --- the customer's pages

    def checkout_page(self, session_id: str) -> Response:
        session = self.double.objects.get(session_id)
        if session is None:
            return Response("no such session", 404)
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        body = (
            f"<p>Pay {escape(amount)}</p>"
            f"<form method='post' action='/sandbox/checkout/{session_id}/pay'>"
            "<button id='sandbox-pay' type='submit'>Pay</button></form>"
            f"<p><a id='stripe-cancel' href='{escape(session['cancel_url'])}'>Cancel</a></p>"
        )
        return Response(
            PAGE.format(title="Stripe double: Checkout", body=body), content_type="text/html"
        )

    def pay(self, session_id: str) -> Response:
        session = self.double.complete_checkout_session(session_id)
        if session.get("mode") == "subscription":
            subscription = self.double.objects[session["subscription"]]
            self.deliver("invoice.paid", self.double.objects[subscription["latest_invoice"]])
            self.deliver("customer.subscription.created", subscription)
        self.deliver("checkout.session.completed", session)
        target = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        return Response(status=303, headers={"Location": target})

    def portal_page(self, portal_id: str) -> Response:
        portal = self.double.objects.get(portal_id)
        if portal is None:
            return Response("no such portal session", 404)
        body = (
            f"<form method='post' action='/sandbox/portal/{portal_id}/fail-renewal'>"
            "<button id='portal-fail-renewal' type='submit'>Fail the next renewal</button>"
            f"</form><p><a id='portal-return' href='{escape(portal['return_url'])}'>"
            "Return</a></p>"
        )
        return Response(
            PAGE.format(title="Stripe double: portal", body=body), content_type="text/html"
        )

    def fail_renewal(self, portal_id: str) -> Response:
        portal = self.double.objects[portal_id]
        for sub in [
            o
            for o in list(self.double.objects.values())
            if o.get("object") == "subscription" and o.get("customer") == portal["customer"]
        ]:
            subscription, invoice = self.double.renew_subscription(sub["id"], paid=False)
            self.deliver("invoice.payment_failed", invoice)
            self.deliver("customer.subscription.updated", subscription)
        return Response(status=303, headers={"Location": portal["return_url"]})
