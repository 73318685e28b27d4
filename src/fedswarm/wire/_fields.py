"""The JSON header: written from plain Python values, read back strictly, field by field.

:class:`Fields` is how every decoder reads an object of the header: each field is taken
once, with the type it must have, and :meth:`Fields.done` refuses whatever is left over,
so an unexpected field is an error rather than silently ignored. Errors name the field by
its path, e.g. ``fit_ins.training.lr``.

Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
(protobuf's JSON mapping does the same), so the header stays standard JSON that any
language can parse, yet a NaN training loss still arrives as NaN: refusing it is the round
protocol's job, which names the participant.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable
from typing import TypeAlias, TypeVar

from fedswarm.wire._errors import WireError

__all__ = [
    "INT_MAX",
    "Fields",
    "Header",
    "Json",
    "check_integer",
    "check_text",
    "dump_header",
    "parse_header",
    "some",
]

Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
Header: TypeAlias = dict[str, object]  # header fields being written; dump_header checks them
E = TypeVar("E", bound=enum.Enum)

INT_MAX = 2**63 - 1  # integers must fit a signed 64-bit field (protobuf int64, Go, Rust)
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _json_type(value: object) -> str:
    """What a parsed JSON value is, for error messages: ``string 'abc'``, ``array``."""
    if value is None or isinstance(value, list | dict):
        return {type(None): "null", list: "array", dict: "object"}[type(value)]
    names = {bool: "bool", int: "integer", float: "number", str: "string"}
    return f"{names.get(type(value), type(value).__name__)} {value!r:.40}"


class Fields:
    """One JSON object of the header, read strictly (see the module docstring)."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise WireError(f"{where}: expected a JSON object, got {_json_type(obj)}")
        self._left: dict[str, object] = dict(obj)
        self.where = where

    def _take(self, name: str) -> object:
        if name not in self._left:
            raise WireError(f"{self.where}: missing field {name!r}")
        return self._left.pop(name)

    def _wrong(self, name: str, expected: str, value: object) -> WireError:
        return WireError(f"{self.where}.{name}: expected {expected}, got {_json_type(value)}")

    def integer(self, name: str) -> int:
        """A non-negative integer below 2**63 (counts, rounds, seeds, byte lengths)."""
        value = self._take(name)
        return check_integer(value, f"{self.where}.{name}")

    def optional_integer(self, name: str) -> int | None:
        if name in self._left and self._left[name] is None:
            del self._left[name]
            return None
        return self.integer(name)

    def number(self, name: str) -> float:
        value = self._take(name)
        if isinstance(value, str) and value in _NON_FINITE:
            return _NON_FINITE[value]
        if type(value) not in (int, float):
            raise self._wrong(name, 'a number (or "NaN", "Infinity", "-Infinity")', value)
        assert isinstance(value, int | float)
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range
            raise WireError(f"{self.where}.{name}: integer out of float range") from None

    def text(self, name: str) -> str:
        value = self._take(name)
        if not isinstance(value, str):
            raise self._wrong(name, "a string", value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise WireError(f"{self.where}.{name}: not valid Unicode (lone surrogate)") from None
        return value

    def choice(self, name: str, kind: type[E]) -> E:
        value = self._take(name)
        for member in kind:
            if member.value == value:
                return member
        allowed = ", ".join(repr(m.value) for m in kind)
        raise self._wrong(name, f"one of {allowed}", value)

    def optional_choice(self, name: str, kind: type[E]) -> E | None:
        if name in self._left and self._left[name] is None:
            del self._left[name]
            return None
        return self.choice(name, kind)

    def child(self, name: str) -> Fields:
        return Fields(self._take(name), f"{self.where}.{name}")

    def optional_child(self, name: str) -> Fields | None:
        if name in self._left and self._left[name] is None:
            del self._left[name]
            return None
        return self.child(name)

    def children(self, name: str) -> list[Fields]:
        """An array of objects."""
        items = self._array(name)
        return [Fields(item, f"{self.where}.{name}[{i}]") for i, item in enumerate(items)]

    def integers(self, name: str) -> tuple[int, ...]:
        """An array of non-negative integers (a shape)."""
        items = self._array(name)
        return tuple(check_integer(v, f"{self.where}.{name}[{i}]") for i, v in enumerate(items))

    def _array(self, name: str) -> list[object]:
        value = self._take(name)
        if not isinstance(value, list):
            raise self._wrong(name, "an array", value)
        return value

    def done(self) -> None:
        """Refuse any field that no reader took."""
        if self._left:
            raise WireError(f"{self.where}: unexpected field(s) {some(self._left)}")


def some(names: Iterable[str], shown: int = 5) -> str:
    """``'a', 'b', ...`` for an error message: the first few names and how many more."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(map(repr, names[:shown])) + more


def check_integer(value: object, where: str) -> int:
    if type(value) is not int:
        raise WireError(f"{where}: expected an integer, got {_json_type(value)}")
    assert isinstance(value, int)
    if value < 0:
        raise WireError(f"{where}: must be >= 0, got {value}")
    if value > INT_MAX:
        raise WireError(f"{where}: must be < 2**63, got {value}")
    return value


def check_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise WireError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _plain(value: object, where: str) -> Json:
    """``value`` as standard JSON: non-finite floats become strings; anything else odd fails."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise WireError(f"{where}: cannot encode a {type(value).__name__} in the header")


def dump_header(header: Header, where: str) -> bytes:
    try:
        text = json.dumps(_plain(header, where), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise WireError(f"{where}: a string is not valid Unicode (lone surrogate)") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise WireError(f"header: duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> object:
    raise WireError(f'header: non-standard JSON constant {name} (write "{name}" as a string)')


def parse_header(raw: bytes) -> Fields:
    """The header's top-level object, or :class:`WireError` saying why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WireError(f"header: not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except WireError:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError, huge integers, deep nesting
        raise WireError(f"header: not valid JSON ({e})") from None
    return Fields(obj, "header")
