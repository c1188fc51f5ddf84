"""Text that people type: control and bidirectional-override characters removed."""

import re

# C0/C1 controls (tab and newlines aside), and the invisible marks that reorder or hide
# text (bidi embeddings, overrides and isolates, LRM/RLM/ALM, zero-width space, BOM):
# shown to an admin they could make one key's label read like another's.
_CONTROLS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def strip_controls(text: str) -> str:
    """`text` without control or bidi-override characters (tab and newlines stay)."""
    return _CONTROLS.sub("", text)


def clean_text(value):
    """A WTForms filter: strip controls from text input, leave anything else alone."""
    return strip_controls(value) if isinstance(value, str) else value


def has_nul(text: str) -> bool:
    return "\x00" in text
