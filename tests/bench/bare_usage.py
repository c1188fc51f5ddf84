"""The floor for the usage figure of `make bench`: a Flask handler that looks up the API
key's hash, then does the conditional UPDATE of the balance and the ledger INSERT in one
transaction. Served by gunicorn with the app's settings, on the app's schema.

    gunicorn -c gunicorn.conf.py tests.bench.bare_usage:app
"""

import hashlib
import os
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask, jsonify, request

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
engine = sa.create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)

KEY = sa.text("SELECT user_id FROM api_keys WHERE key_hash = :hash AND revoked_at IS NULL")
DEBIT = sa.text(
    "UPDATE credit_accounts SET balance = balance - :credits, used = used + :credits"
    " WHERE user_id = :user_id AND balance >= :credits RETURNING balance"
)
ENTRY = sa.text(
    "INSERT INTO ledger_entries (user_id, kind, credits, balance_after, description,"
    " created_at) VALUES (:user_id, 'usage', -:credits, :balance, :description, :now)"
)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


@app.post("/api/v1/usage")
def usage():
    secret = request.headers.get("Authorization", "").partition(" ")[2]
    body = request.get_json(silent=True) or {}
    values = {
        "credits": int(body.get("credits", 1)),
        "description": body.get("description", ""),
        "hash": hashlib.sha256(secret.encode()).hexdigest(),
        "now": datetime.now(UTC),
    }
    with engine.begin() as conn:
        values["user_id"] = conn.execute(KEY, values).scalar()
        if values["user_id"] is None:
            return jsonify(error="invalid_api_key"), 401
        values["balance"] = conn.execute(DEBIT, values).scalar()
        if values["balance"] is None:
            return jsonify(error="insufficient_credits"), 402
        conn.execute(ENTRY, values)
    return jsonify(balance=values["balance"])
