"""A deterministic JSON value that fits a JSON schema: the local endpoint's tool arguments and structured answers.

It covers what tool and response schemas use: `type` (one or a list), `enum`,
`const`, `properties` with `required`, `items` and `prefixItems` with
`minItems`, string `minLength`/`maxLength`/`format`/`pattern` (a pattern picks
the first of a few candidates it matches), number bounds and `multipleOf`,
`anyOf`/`oneOf` (the first), `allOf` (merged) and local `$ref`s. Strings say
they are the local endpoint's, never anything that reads as medical content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FILLER = "medops-local"
FORMATS = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00Z",
           "email": "local@example.org", "uri": "https://example.org/medops-local", "uuid":
           "00000000-0000-4000-8000-000000000000", "hostname": "example.org", "ipv4": "127.0.0.1"}
# Tried in order against a `pattern`: shapes identifiers and codes often take (an ICD-10 code among them).
PATTERN_CANDIDATES = ("A00", "A00.0", "medops-local", "local", "A", "a", "0", "00", "000", "AA", "A0", "X",
                      "test_1", "T-1", "2026-01-01", "ABC123")
MAX_DEPTH = 16


def instance_for(schema: object, root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A value valid under `schema` (best effort for what the module docstring does not list)."""
    if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
        return None
    root = root if root is not None else schema
    if isinstance(schema.get("$ref"), str):
        return instance_for(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf"):
        options = schema.get(choice)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            return instance_for((usable or options)[0], root, depth + 1)
    if isinstance(schema.get("allOf"), list):
        return instance_for(_merged(schema, root), root, depth + 1)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, depth)
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return False
    return None


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if kinds else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    return "array" if "items" in schema else "null" if not schema else "string"


def _resolve(ref: str, root: Mapping[str, Any]) -> object:
    if not ref.startswith("#"):
        return {}
    node: object = root
    for part in ref.lstrip("#/").split("/"):
        if not part:
            continue
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, Mapping) else None
    return node


def _merged(schema: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = _resolve(part["$ref"], root) if isinstance(part, Mapping) and "$ref" in part else part
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    found = schema.get("properties")
    properties: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    required = [name for name in schema.get("required") or () if isinstance(name, str)]
    # Every property when there is room: a tool's optional fields filled show more of a schema at work.
    names = required if "maxProperties" in schema else [*required, *(n for n in properties if n not in required)]
    return {name: instance_for(properties.get(name, {"type": "string"}), root, depth + 1) for name in names}


def _array(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> list[Any]:
    found = schema.get("prefixItems")
    prefix: list[Any] = found if isinstance(found, list) else []
    count = max(len(prefix), _whole(schema.get("minItems"), 0), 1)
    count = min(count, _whole(schema.get("maxItems"), count))
    items = schema.get("items", {})
    values = [instance_for(prefix[i] if i < len(prefix) else items, root, depth + 1) for i in range(count)]
    if schema.get("uniqueItems") and len({repr(v) for v in values}) < len(values):
        values = values[:1]
    return values


def _string(schema: Mapping[str, Any]) -> str:
    candidates = [FORMATS[schema["format"]]] if schema.get("format") in FORMATS else []
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            compiled = re.compile(pattern)
        except re.error:
            compiled = None
        matching = [c for c in (*candidates, *PATTERN_CANDIDATES) if compiled is None or compiled.search(c)]
        candidates = matching[:1] or candidates
    text = candidates[0] if candidates else FILLER
    low, high = _whole(schema.get("minLength"), 0), _whole(schema.get("maxLength"), len(text))
    if len(text) < low:
        text += "x" * (low - len(text))
    return text[:max(high, low)]


def _number(schema: Mapping[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = low if isinstance(low, (int, float)) and not isinstance(low, bool) else 0
    if "exclusiveMinimum" in schema and "minimum" not in schema:
        value += 1 if integer else 0.5
    if isinstance(high, (int, float)) and not isinstance(high, bool) and value > high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
        value = -(-value // step) * step
    return int(value) if integer else float(value)


def _whole(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
