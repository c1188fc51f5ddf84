"""Subscription plans from the PLANS setting: `code:monthly_credits:price_minor:rollover|expire[:price_id]`."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app

from webapp.domain.errors import UnknownPlanError

# The subscription invoices that grant the plan's monthly credits: the first and each
# renewal. Others (a plan change billed at once, a manual invoice) grant nothing.
GRANTING_REASONS = ("subscription_create", "subscription_cycle")


@dataclass(frozen=True)
class Plan:
    code: str
    monthly_credits: int
    price_minor: int
    rollover: bool
    price_id: str | None = None


def parse_plans(text: str) -> tuple[Plan, ...]:
    """Plans in the order configured; a malformed entry raises ValueError naming it."""
    plans = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        fields = entry.split(":")
        if len(fields) not in (4, 5) or fields[3] not in ("rollover", "expire"):
            raise ValueError(
                f"PLANS entry {entry!r} is not code:credits:price:rollover|expire[:price]"
            )
        code, credits, price = fields[0].strip(), int(fields[1]), int(fields[2])
        if not code or credits <= 0 or price <= 0:
            raise ValueError(f"PLANS entry {entry!r} needs a code and positive numbers")
        price_id = fields[4].strip() if len(fields) == 5 and fields[4].strip() else None
        plans.append(Plan(code, credits, price, fields[3] == "rollover", price_id))
    return tuple(plans)


def all_plans() -> tuple[Plan, ...]:
    return parse_plans(current_app.config["PLANS"])


def find_plan(code: str | None) -> Plan | None:
    return next((plan for plan in all_plans() if plan.code == code), None)


def get_plan(code: str | None) -> Plan:
    plan = find_plan(code)
    if plan is None:
        raise UnknownPlanError(f"There is no plan called {code!r}.")
    return plan


def plan_for_price(price_id: str | None) -> Plan | None:
    """The plan whose configured Stripe Price id is `price_id`."""
    if not price_id:
        return None
    return next((plan for plan in all_plans() if plan.price_id == price_id), None)


def invoice_grants_credits(invoice: Mapping[str, Any]) -> bool:
    """Whether a paid subscription invoice grants the plan's credits (by its billing_reason)."""
    return invoice.get("billing_reason") in GRANTING_REASONS
