"""Declaring a tunable (default, range, meaning), and parsing, checking and showing its values."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

__all__ = [
    "InvalidThreshold",
    "Rules",
    "Tunable",
    "Value",
    "declare",
    "format_value",
    "tunable",
]

#: A tunable's value: a number, or a tuple of whole numbers (days of a schedule).
Value = int | float | tuple[int, ...]


class InvalidThreshold(ValueError):
    """A change that cannot be applied; the message says which key and why."""


def tunable(default: Any, low: float, high: float, meaning: str) -> Any:
    """Declare a tunable field: its default, the closed range a team may set, one line of
    meaning (the longer ``#:`` comment above it says why)."""
    return field(default=default, metadata={"low": low, "high": high, "meaning": meaning})


@dataclass(frozen=True, slots=True)
class Tunable:
    """One tunable, as the command line, the console and the audit log show it."""

    key: str
    section: str
    name: str
    type: str  # "int", "float" or "days" (a tuple of whole numbers)
    default: Value
    low: float
    high: float
    meaning: str

    def parse(self, text: str) -> Value:
        """The value ``text`` names, checked against type and range (the console and the
        command line send text)."""
        text = text.strip()
        try:
            if self.type == "days":
                parts = [p for p in text.replace(" ", "").strip("()").split(",") if p]
                return self.check(tuple(int(p) for p in parts))
            if self.type == "int":
                return self.check(int(text))
            return self.check(float(text))
        except ValueError as exc:
            if isinstance(exc, InvalidThreshold):
                raise
            raise InvalidThreshold(f"{self.key}: {text!r} is not {self._a_type}") from None

    def check(self, value: object) -> Value:
        """``value`` as this tunable's type, if it is one and within range; else refused."""
        if self.type == "days":
            if isinstance(value, list):
                value = tuple(value)
            if (
                not isinstance(value, tuple)
                or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            ):
                raise InvalidThreshold(f"{self.key}: {value!r} is not {self._a_type}")
            for item in value:
                self._in_range(item)
            return tuple(sorted(set(value), reverse=True))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidThreshold(f"{self.key}: {value!r} is not {self._a_type}")
        if self.type == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise InvalidThreshold(f"{self.key}: {value!r} is not {self._a_type}")
                value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise InvalidThreshold(f"{self.key}: {value!r} is not a finite number")
        self._in_range(value)
        return value

    def _in_range(self, value: float) -> None:
        if not self.low <= value <= self.high:
            raise InvalidThreshold(
                f"{self.key}: {format_value(value)} is out of range "
                f"[{format_value(self.low)}, {format_value(self.high)}]"
            )

    @property
    def _a_type(self) -> str:
        return {
            "int": "a whole number",
            "float": "a number",
            "days": "a comma-separated list of whole days",
        }[self.type]


def format_value(value: object) -> str:
    """A value as a team types it: ``5``, ``0.65``, ``10,7,5,3``."""
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return str(value)


_Section = TypeVar("_Section")

#: Rules across the tunables of one section, each with what a team is told when a change
#: breaks it: a class-level ``CONSTRAINTS`` of a thresholds dataclass.
Rules: TypeAlias = tuple[tuple[str, Callable[[_Section], bool]], ...]


def declare(section: str, kind: type[Any]) -> dict[str, Tunable]:
    """The tunables of a thresholds dataclass ``kind``, by key (``section.name``), in field
    order."""
    declared: dict[str, Tunable] = {}
    hints = typing.get_type_hints(kind)
    for f in dataclasses.fields(kind):
        hint = hints[f.name]
        type_name = hint.__name__ if hint in (int, float) else "days"
        key = f"{section}.{f.name}"
        declared[key] = Tunable(
            key=key,
            section=section,
            name=f.name,
            type=type_name,
            default=typing.cast(Value, f.default),
            low=f.metadata["low"],
            high=f.metadata["high"],
            meaning=f.metadata["meaning"],
        )
    return declared
