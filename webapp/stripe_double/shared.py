"""The sandbox's Stripe double shared by processes: the app and its worker see one Stripe.

`make run` serves the app and runs the worker in another process; an off-session charge
made by the worker must find the customer and card the app's sandbox saved, and the
events it causes must reach the app's webhook. The double's state lives in one JSON file
under instance/, read and written under an exclusive file lock around each operation.
Development only: production never serves the sandbox.
"""

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webapp.stripe_double import StripeDouble, minimal_templates

_STATE = (
    "_objects",
    "_idempotent",
    "intent_metadata",
    "intent_data",
    "setup_data",
    "subscription_data",
    "pending_events",
)


class SharedDouble(StripeDouble):
    def __init__(self, path: str):
        self._path = Path(path)
        self._depth = 0
        self._objects: dict[str, dict[str, Any]] = {}
        super().__init__(minimal_templates, checkout_base="")
        self.pending_events = []

    @property
    def objects(self) -> dict[str, dict[str, Any]]:
        if not self._depth:  # a read between operations: what the other processes wrote
            with self._locked(fcntl.LOCK_SH):
                self._load()
        return self._objects

    @objects.setter
    def objects(self, value: dict[str, dict[str, Any]]) -> None:
        self._objects = value

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def shared(self) -> Iterator[None]:
        """One operation on the shared state: loaded first, written back when it succeeds."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._locked(fcntl.LOCK_EX):
                self._load()
                self._depth = 1
                try:
                    yield
                    self._save()
                finally:
                    self._depth = 0

    def _load(self) -> None:
        try:
            state = json.loads(self._path.read_text())
        except (FileNotFoundError, ValueError):
            return
        for name in _STATE:
            if name in state:
                setattr(self, name, state[name])

    def _save(self) -> None:
        state = {name: getattr(self, name) for name in _STATE}
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self._path)


def _sharing(name: str):
    method = getattr(StripeDouble, name)

    def wrapper(self, *args, **kwargs):
        with self.shared():
            return method(self, *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = name, method.__doc__
    return wrapper


for _name in (
    "request",
    "complete_checkout_session",
    "expire_checkout_session",
    "renew_subscription",
    "cancel_subscription",
    "change_default_card",
    "take_pending_events",
    "new_object",
    "emit",
):
    setattr(SharedDouble, _name, _sharing(_name))
