"""Every tunable of every detector, as data: a team's live change is just a new value of these.

Each tunable is declared once, beside its detector, with :func:`~detectors.tunables.tunable`:
its default, the range a team may set and a one-line meaning. Each detector names its section
(``takeover``) and its thresholds dataclass, and :mod:`detectors.registry` lists the detectors;
:class:`Thresholds` and :data:`TUNABLES` are built from that list. A key is ``section.name``
(``takeover.min_failures``) and its type is the field's. :meth:`Thresholds.with_changes` is the
one way to change values, and it refuses anything invalid (unknown key, wrong type, out of
range, inconsistent with another tunable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError
from types import MappingProxyType
from typing import Any, TypeVar

from detectors.registry import sections
from detectors.tunables import InvalidThreshold, Tunable, Value, declare, format_value, tunable

__all__ = [
    "CONSTRAINTS",
    "DEFAULT_VERSION",
    "InvalidThreshold",
    "SECTIONS",
    "TUNABLES",
    "Thresholds",
    "Tunable",
    "Value",
    "format_value",
    "tunable",
]

#: The version stamped on alerts while no team has changed a threshold: the shipped defaults.
DEFAULT_VERSION = "v0"

#: Each registered detector's thresholds dataclass, by section name, in the order the
#: tunables are listed.
SECTIONS: Mapping[str, type[Any]] = MappingProxyType(sections())

_Section = TypeVar("_Section")


class Thresholds:
    """The thresholds of all detectors, with the version stamped on every alert.

    One frozen dataclass per registered detector, its section: ``thresholds.takeover``
    (typed ``Any``), or typed, ``thresholds.of(TakeoverThresholds)``. A section left out
    takes its defaults. Immutable: a change is a new value (:meth:`with_changes`).

    >>> from detectors.takeover import TakeoverThresholds
    >>> stricter = Thresholds(takeover=TakeoverThresholds(min_failures=3))
    >>> stricter.takeover.min_failures, stricter.of(TakeoverThresholds).min_failures
    (3, 3)
    >>> stricter.version, stricter.delinquency.grace_days, stricter == Thresholds()
    ('v0', 3, False)
    """

    __slots__ = ("_sections", "version")

    version: str
    _sections: Mapping[str, Any]

    def __init__(self, version: str = DEFAULT_VERSION, **sections: Any) -> None:
        for name in sections:
            if name not in SECTIONS:
                raise TypeError(f"no section {name!r} (sections are {', '.join(SECTIONS)})")
        given = {
            name: sections[name] if name in sections else kind() for name, kind in SECTIONS.items()
        }
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "_sections", MappingProxyType(given))

    def __getattr__(self, name: str) -> Any:
        # Called only for what normal lookup does not find: the sections, by name.
        if name in SECTIONS:
            return self._sections[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def section(self, name: str) -> Any:
        """The thresholds of section ``name`` (``"takeover"``)."""
        if name not in SECTIONS:
            raise KeyError(f"no section {name!r} (sections are {', '.join(SECTIONS)})")
        return self._sections[name]

    def sections(self) -> dict[str, Any]:
        """Every section's thresholds, by name, in the registry's order."""
        return dict(self._sections)

    def of(self, kind: type[_Section]) -> _Section:
        """The section whose thresholds dataclass is ``kind``, typed as such."""
        name = _SECTION_OF.get(kind)
        if name is None:
            raise KeyError(f"{kind.__name__} is no registered detector's thresholds")
        section = self._sections[name]
        if not isinstance(section, kind):
            raise TypeError(f"section {name!r} holds {type(section).__name__}")
        return section

    def values(self) -> dict[str, Value]:
        """Every tunable's value, by key, in declaration order."""
        return {key: getattr(self._sections[t.section], t.name) for key, t in TUNABLES.items()}

    def with_changes(self, changes: Mapping[str, object], version: str) -> Thresholds:
        """These thresholds with ``changes`` (key to value, or to its text) applied, as
        ``version``. Refuses the whole change, naming the first problem, if any key is
        unknown, any value of the wrong type or out of range, or the result breaks one of
        the :data:`CONSTRAINTS`."""
        values = self.values()
        for key, value in changes.items():
            declared = TUNABLES.get(key)
            if declared is None:
                raise InvalidThreshold(f"{key}: no such threshold ({_closest(key)})")
            values[key] = declared.parse(value) if isinstance(value, str) else declared.check(value)
        return Thresholds.from_values(values, version)

    @classmethod
    def from_values(cls, values: Mapping[str, object], version: str) -> Thresholds:
        """Thresholds from stored values; a key this release does not know is refused, a key
        it has added since takes its default."""
        sections: dict[str, dict[str, object]] = {}
        for key, value in values.items():
            declared = TUNABLES.get(key)
            if declared is None:
                raise InvalidThreshold(f"{key}: no such threshold ({_closest(key)})")
            sections.setdefault(declared.section, {})[declared.name] = declared.check(value)
        built = cls(
            version=version,
            **{name: SECTIONS[name](**fields) for name, fields in sections.items()},
        )
        for rule, holds in CONSTRAINTS:
            if not holds(built):
                raise InvalidThreshold(f"refused: {rule}")
        return built

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Thresholds):
            return NotImplemented
        return (self.version, self.sections()) == (other.version, other.sections())

    def __hash__(self) -> int:
        return hash((self.version, *self._sections.values()))

    def __repr__(self) -> str:
        sections = "".join(f", {name}={section!r}" for name, section in self._sections.items())
        return f"Thresholds(version={self.version!r}{sections})"

    def __reduce__(self) -> tuple[Callable[..., Thresholds], tuple[str, dict[str, Any]]]:
        return _rebuilt, (self.version, dict(self._sections))


def _rebuilt(version: str, sections: dict[str, Any]) -> Thresholds:
    return Thresholds(version, **sections)


def _closest(key: str) -> str:
    section = key.split(".", 1)[0]
    same = [k for k in TUNABLES if k.startswith(section + ".")]
    if same:
        return "its section has " + ", ".join(k.split(".", 1)[1] for k in same)
    return "sections are " + ", ".join(SECTIONS)


def _on_section(name: str, holds: Callable[[Any], bool]) -> Callable[[Thresholds], bool]:
    return lambda thresholds: holds(thresholds.section(name))


_SECTION_OF: dict[type[Any], str] = {kind: name for name, kind in SECTIONS.items()}

#: Every tunable of every detector, by key (``section.name``).
TUNABLES: dict[str, Tunable] = {
    key: declared
    for name, kind in SECTIONS.items()
    for key, declared in declare(name, kind).items()
}

#: Rules across tunables, each with what a team is told when a change breaks it: every
#: section's ``CONSTRAINTS``, in section order.
CONSTRAINTS: tuple[tuple[str, Callable[[Thresholds], bool]], ...] = tuple(
    (rule, _on_section(name, holds))
    for name, kind in SECTIONS.items()
    for rule, holds in getattr(kind, "CONSTRAINTS", ())
)
