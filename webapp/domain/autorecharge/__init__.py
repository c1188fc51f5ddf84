"""Auto-recharge: the saved card, the settings' rules, and charging an attempt (the worker's job).

settings.py holds the settings and their form, cards.py the saved card, charges.py the
off-session charge and Stripe's answer to it, outcomes.py what the user sees of an attempt
afterwards (confirming one that needs action, the failed / needs-action mail). Importing
the package registers the charge jobs and the mail builders.
"""

from webapp.domain.autorecharge.cards import (
    card_session_returned,
    save_card_from_session,
    start_card_setup,
)
from webapp.domain.autorecharge.charges import CHARGE_WINDOW, charge_attempt, on_payment_intent
from webapp.domain.autorecharge.outcomes import confirmation_url, recent_attempts, waiting_attempt
from webapp.domain.autorecharge.settings import (
    MAX_THRESHOLD,
    InvalidSettingsError,
    Settings,
    form_values,
    parse_settings,
    save_settings,
    settings_for,
    summary,
)

__all__ = [
    "CHARGE_WINDOW",
    "MAX_THRESHOLD",
    "InvalidSettingsError",
    "Settings",
    "card_session_returned",
    "charge_attempt",
    "confirmation_url",
    "form_values",
    "on_payment_intent",
    "parse_settings",
    "recent_attempts",
    "save_card_from_session",
    "save_settings",
    "settings_for",
    "start_card_setup",
    "summary",
    "waiting_attempt",
]
