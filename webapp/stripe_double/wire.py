"""Stripe's shapes on the wire: bracketed form bodies, object ids in paths, error bodies."""

from typing import Any

# The prefixes of the object ids the double hands out; a path segment with one is an id.
ID_PREFIXES = {
    "cs",
    "cus",
    "ch",
    "pi",
    "re",
    "in",
    "sub",
    "bps",
    "dp",
    "price",
    "prod",
    "evt",
    "pm",
    "seti",
}


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form encoding (`a[b][0][c]=v`) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists_from_numbered_dicts(root)


def _lists_from_numbered_dicts(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_numbered_dicts(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def looks_like_id(segment: str) -> bool:
    return "_" in segment and segment.split("_", 1)[0] in ID_PREFIXES


def error(
    error_type: str, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The body of a Stripe error answer."""
    body = {"type": error_type, "message": message}
    if code:
        body["code"] = code
    if param:
        body["param"] = param
    return {"error": body}
