"""The floor for `make bench`: a Flask webhook that only verifies the signature and does one
atomic UPDATE and one INSERT. Served by gunicorn with the app's settings, on the app's schema.

    gunicorn -c gunicorn.conf.py tests.bench.bare_webhook:app
"""

import json
import os
from datetime import UTC, datetime

import sqlalchemy as sa
import stripe
from flask import Flask, jsonify, request

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
engine = sa.create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]

CREDIT = sa.text(
    "UPDATE credit_accounts SET balance = balance + :credits, "
    "purchased = purchased + :credits WHERE user_id = :user_id RETURNING balance"
)
ENTRY = sa.text(
    "INSERT INTO ledger_entries (user_id, kind, credits, balance_after, reference, "
    "created_at) VALUES (:user_id, 'purchase', :credits, :balance, :reference, :now)"
)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


@app.post("/webhooks/stripe")
def stripe_webhook():
    payload = request.get_data(as_text=True)
    try:
        stripe.WebhookSignature.verify_header(
            payload, request.headers.get("Stripe-Signature", ""), SECRET, 300
        )
    except stripe.SignatureVerificationError:
        return jsonify(error="invalid_payload"), 400
    session = json.loads(payload)["data"]["object"]
    metadata = session.get("metadata") or {}
    if "user_id" in metadata and "credits" in metadata:
        values = {
            "user_id": int(metadata["user_id"]),
            "credits": int(metadata["credits"]),
            "reference": session["id"],
            "now": datetime.now(UTC),
        }
        with engine.begin() as conn:
            values["balance"] = conn.execute(CREDIT, values).scalar_one()
            conn.execute(ENTRY, values)
    return jsonify(received=True)
