"""The admin views, one module per resource; importing them registers their routes."""

from webapp.admin import dashboard, events, purchases, users  # noqa: F401
