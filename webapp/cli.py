"""Command-line tools: `flask --app wsgi users ...` and `flask --app wsgi credits ...`."""

import logging

import click
from flask import Flask
from flask.cli import AppGroup

from webapp.domain import ledger, users
from webapp.domain.errors import DomainError

users_cli = AppGroup("users", help="Manage users.")
credits_cli = AppGroup("credits", help="Operate on credits.")

DEMO_USER = ("demo@example.com", "demo-password")
DEMO_ADMIN = ("admin@example.com", "admin-password")


def _user_or_fail(email: str):
    user = users.find_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    return user


@users_cli.command("create-admin")
@click.argument("email")
@click.option("--password", help="Set this password (required when the user is new).")
def create_admin(email: str, password: str | None):
    """Give EMAIL the admin role, creating the user if needed."""
    try:
        user, created = users.make_admin(email, password)
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{'Created' if created else 'Updated'} admin {user.email}")


@users_cli.command("demo")
def create_demo_users():
    """Create the demo user and demo admin used by `make run` (idempotent)."""
    for (email, password), is_admin in ((DEMO_USER, False), (DEMO_ADMIN, True)):
        if users.find_by_email(email) is None:
            users.create_user(email, password, is_admin=is_admin, verified=True)
    click.echo(f"Demo login: {DEMO_USER[0]} / {DEMO_USER[1]}")
    click.echo(f"Demo admin login: {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}")


# ignore_unknown_options: so a removal can be written as a plain negative number (-10).
@credits_cli.command("grant", context_settings={"ignore_unknown_options": True})
@click.argument("email")
@click.argument("credits", type=int)
@click.option("--reason", required=True, help="Why; kept on the ledger row.")
def grant(email: str, credits: int, reason: str):
    """Give EMAIL a number of CREDITS (negative to remove), with a reason."""
    user = _user_or_fail(email)
    try:
        balance = ledger.adjust(user.id, credits, reason)
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{credits:+,} credits for {user.email}; balance now {balance:,}")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(credits_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(jobs_cli)


# --- background worker

jobs_cli = AppGroup("jobs", help="Look at and run background jobs.")


@click.command("worker")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=None,
    help="Jobs run at once in this process (default WORKER_THREADS).",
)
def worker_command(threads: int | None):
    """Run the background worker in the foreground (SIGTERM stops it gracefully)."""
    from flask import current_app

    from webapp import worker

    huey_log = logging.getLogger("huey")  # the app's own loggers already log (JSON)
    huey_log.addHandler(logging.StreamHandler())
    huey_log.setLevel(logging.INFO)
    worker.run_consumer(threads or current_app.config["WORKER_THREADS"])


@jobs_cli.command("run")
def jobs_run():
    """Do every due job here and now, without a queue (cron or debugging)."""
    from webapp.domain import jobs

    click.echo(f"ran {jobs.run_due()} jobs")


@jobs_cli.command("sweep")
def jobs_sweep():
    """Ring the queue again for every job left pending too long."""
    from webapp.domain import jobs

    click.echo(f"re-enqueued {jobs.sweep()} jobs")


# --- Reconcile


@credits_cli.command("reconcile")
@click.option(
    "--hours",
    type=click.IntRange(min=1),
    default=72,
    show_default=True,
    help="Look at Checkout Sessions created this many hours back.",
)
@click.option("--page-size", type=click.IntRange(1, 100), default=100, hidden=True)
def reconcile_command(hours: int, page_size: int):
    """Fulfil paid Checkout Sessions whose webhook never arrived; mark expired ones."""
    from webapp.domain.reconcile import reconcile

    try:
        report = reconcile(hours, page_size)
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    if report.rows:
        click.echo(f"{'session':<40} {'purchase':>8}  {'stripe':<20} result")
    for row in report.rows:
        if row.session_id == "-":
            click.echo(f"purchase {row.purchase_id}: {row.stripe_state}, {row.action}")
            continue
        purchase = str(row.purchase_id) if row.purchase_id is not None else "-"
        click.echo(f"{row.session_id:<40} {purchase:>8}  {row.stripe_state:<20} {row.action}")
    click.echo(report.summary())


# --- expiry


@credits_cli.command("expire")
def expire():
    """Write off plan credits past their expiry (cron; safe to run twice or on many hosts)."""
    results = ledger.expire_due_grants()
    for user_id, credits in results:
        if credits:
            click.echo(f"user {user_id}: {credits:,} credits expired")
    total = sum(credits for _, credits in results)
    click.echo(f"checked {len(results)} accounts, expired {total:,} credits")


@credits_cli.command("compact-totals")
def compact_totals():
    """Fold past days' shards of the /admin/ totals into one row each (cron; any time)."""
    click.echo(f"folded {ledger.totals_upkeep.compact():,} rows")


@credits_cli.command("release-holds")
def release_holds():
    """Mark holds past their expiry expired (worker schedule or cron; safe to run anywhere).

    Tidying only: a hold past its expiry already reserves nothing.
    """
    results = ledger.release_stale_holds()
    total = sum(credits for _, credits in results)
    click.echo(f"released {total:,} credits from {len(results)} accounts")


# --- API keys


@users_cli.command("api-key")
@click.argument("email")
@click.option("--label", default="", help="A name to recognise the key by.")
def api_key(email: str, label: str):
    """Mint a new API key for EMAIL and print it (it is shown only this once)."""
    from webapp.domain import api_keys

    user = _user_or_fail(email)
    click.echo(api_keys.mint(user.id, label).secret)


# --- catalog


@credits_cli.command("packs")
def packs_command():
    """Re-read the CREDIT_PACKS Prices from Stripe and print what is on offer, and why not."""
    from webapp.domain import catalog
    from webapp.domain.pricing import format_money

    packs = catalog.packs(refresh=True)
    click.echo(f"{'pack':<32} {'credits':>10} {'amount':>16}  currency  offered")
    for pack in packs:
        quote = pack.quote
        credits = f"{quote.credits:,}" if quote else "-"
        amount = format_money(quote.amount_cents, quote.currency) if quote else "-"
        currency = quote.currency if quote else "-"
        state = "yes" if quote else f"no: {pack.reason}"
        if pack.unreachable and pack.reason != catalog.UNREACHABLE:
            state += " (Stripe could not be asked; last reading kept)"
        name = f"  {quote.name}" if quote and quote.name else ""
        click.echo(f"{pack.entry:<32} {credits:>10} {amount:>16}  {currency:<8}  {state}{name}")
    offered = sum(1 for pack in packs if pack.quote)
    click.echo(f"{offered} of {len(packs)} packs offered")
