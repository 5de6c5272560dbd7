"""Checking JSON read from a file against a schema, with errors that say where.

A schema is built from the checkers below.  Calling one with ``(value,
path)`` returns the value as the reader wants it (numbers as floats, the
strings ``"nan"``/``"inf"``/``"-inf"`` decoded) or raises :class:`SchemaError`
whose message names the field and what was found there, e.g.
``results[0].threshold must be a number or null, got "abc"``.  Records refuse
unknown fields, so a misspelt field in a hand-edited file is reported rather
than ignored.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

__all__ = [
    "SchemaError",
    "Checker",
    "Number",
    "Integer",
    "String",
    "Boolean",
    "Constant",
    "Nullable",
    "ListOf",
    "MapOf",
    "Record",
    "AnyJson",
    "INT64_MAX",
]

INT64_MAX = 2**63 - 1
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class SchemaError(ValueError):
    """A JSON document does not have the expected shape; the message names the field (``path``)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path or 'the document'} {problem}")
        self.path = path


def _show(value) -> str:
    """A short JSON rendering of ``value`` for error messages."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Checker:
    """Base: ``what`` describes the accepted values in error messages."""

    what = "a JSON value"

    def __call__(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def fail(self, value: Any, path: str):
        raise SchemaError(path, f"must be {self.what}, got {_show(value)}")


class AnyJson(Checker):
    """Any JSON value (free-form metadata), returned as it is."""

    def __call__(self, value, path):
        return value


class Number(Checker):
    """A JSON number, or ``"nan"``, ``"inf"``, ``"-inf"`` (how tfmia writes non-finite floats); a float."""

    what = "a number"

    def __call__(self, value, path):
        if isinstance(value, str) and value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer beyond the float range
                pass
        self.fail(value, path)


class Integer(Checker):
    """A JSON integer in ``[minimum, maximum]`` (int64 by default)."""

    def __init__(self, minimum: int = 0, maximum: int = INT64_MAX):
        self.minimum, self.maximum = minimum, maximum
        self.what = f"an integer in [{minimum}, {maximum}]"

    def __call__(self, value, path):
        if isinstance(value, int) and not isinstance(value, bool) and self.minimum <= value <= self.maximum:
            return value
        self.fail(value, path)


class String(Checker):
    """A string, optionally one of ``choices`` or matching ``pattern`` (whole string)."""

    def __init__(self, choices=None, pattern: str | None = None, what: str | None = None):
        self.choices = None if choices is None else tuple(choices)
        self.pattern = None if pattern is None else re.compile(pattern)
        if what is not None:
            self.what = what
        elif self.choices is not None:
            self.what = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        else:
            self.what = "a string"

    def __call__(self, value, path):
        if isinstance(value, str):
            if (self.choices is None or value in self.choices) and (
                self.pattern is None or self.pattern.fullmatch(value)
            ):
                return value
        self.fail(value, path)


class Boolean(Checker):
    what = "true or false"

    def __call__(self, value, path):
        if isinstance(value, bool):
            return value
        self.fail(value, path)


class Constant(Checker):
    """Exactly ``expected`` (compared with its type: ``true`` is not ``1``)."""

    def __init__(self, expected):
        self.expected = expected
        self.what = _show(expected)

    def __call__(self, value, path):
        if type(value) is type(self.expected) and value == self.expected:
            return value
        self.fail(value, path)


class Nullable(Checker):
    """``null`` (returned as None) or what ``inner`` accepts."""

    def __init__(self, inner: Checker):
        self.inner = inner
        self.what = f"{inner.what} or null"

    def __call__(self, value, path):
        if value is None:
            return None
        try:
            return self.inner(value, path)
        except SchemaError as exc:
            if exc.path == path:  # the value itself, not a field inside it: say null was allowed
                self.fail(value, path)
            raise


class ListOf(Checker):
    """A JSON array whose items ``item`` accepts; a list."""

    def __init__(self, item: Checker, max_length: int | None = None):
        self.item, self.max_length = item, max_length
        size = "a list" if max_length is None else f"a list of at most {max_length}"
        self.what = f"{size} (each item {item.what})"

    def __call__(self, value, path):
        if not isinstance(value, list) or (self.max_length is not None and len(value) > self.max_length):
            self.fail(value, path)
        return [self.item(v, f"{path}[{i}]") for i, v in enumerate(value)]


class MapOf(Checker):
    """A JSON object with any keys, whose values ``value`` accepts; a dict."""

    def __init__(self, value: Checker):
        self.value = value
        self.what = f"an object (each value {value.what})"

    def __call__(self, value, path):
        if not isinstance(value, dict):
            self.fail(value, path)
        return {k: self.value(v, f"{path}[{json.dumps(k)}]") for k, v in value.items()}


class Record(Checker):
    """A JSON object with the ``required`` fields, any of the ``optional`` ones and no others; a dict."""

    what = "an object"

    def __init__(self, required: Mapping[str, Checker], optional: Mapping[str, Checker] | None = None):
        self.required = dict(required)
        self.optional = dict(optional or {})

    def __call__(self, value, path):
        if not isinstance(value, dict):
            self.fail(value, path)
        missing = [k for k in self.required if k not in value]
        if missing:
            raise SchemaError(_field(path, missing[0]), "is missing")
        unknown = [k for k in value if k not in self.required and k not in self.optional]
        if unknown:
            raise SchemaError(_field(path, unknown[0]), "is not a known field")
        fields = {**self.required, **self.optional}
        return {k: fields[k](v, _field(path, k)) for k, v in value.items()}
