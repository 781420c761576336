"""The file ``lendwatch fit`` writes: fitted thresholds, how they were found, and what they did.

One JSON object::

    {"format": "lendwatch.fitted", "format_version": 1, "created_at": "...",
     "thresholds": {"takeover.min_failures": 3, ...},       # every key, fitted or default
     "fitted": {"takeover.min_failures": [5, 3], ...},     # key: [default, fitted], changed only
     "settings": {"targets": {...}, "holdout": 0.3, "seed": 7, ...},
     "source": {"input": "...", "labels": "...", "events": ..., "borrowers": ...},
     "report": {"categories": {...}, "wall_seconds": ..., "engine_runs": ...}}

Every reader (``replay --fitted``, ``backtest --fitted``, ``thresholds shadow --fitted``)
validates the thresholds as any threshold change is validated (known keys, types, ranges, the
constraints across tunables): a file edited by hand, or written by an older release with a key
since removed, is refused with the reason, never half applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from detectors.thresholds import InvalidThreshold, Thresholds, Value

__all__ = ["FORMAT", "FORMAT_VERSION", "FittedFile", "read_fitted", "write_fitted"]

FORMAT = "lendwatch.fitted"
FORMAT_VERSION = 1


@dataclass
class FittedFile:
    """What a fitted file holds; ``thresholds`` already validated."""

    thresholds: Thresholds
    settings: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def changes(self) -> dict[str, tuple[Value, Value]]:
        """Key to (default, fitted) for every value the fit moved from its default."""
        defaults, fitted = Thresholds().values(), self.thresholds.values()
        return {k: (defaults[k], fitted[k]) for k in fitted if fitted[k] != defaults[k]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "thresholds": {k: _json_value(v) for k, v in self.thresholds.values().items()},
            "fitted": {k: [_json_value(a), _json_value(b)] for k, (a, b) in self.changes().items()},
            "settings": self.settings,
            "source": self.source,
            "report": self.report,
        }

    @classmethod
    def from_dict(cls, raw: Any, *, where: str = "fitted file") -> FittedFile:
        """A fitted file from its JSON object; :class:`InvalidThreshold` says what is wrong."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise InvalidThreshold(f"{where}: not a lendwatch fitted file (no format {FORMAT!r})")
        if raw.get("format_version") != FORMAT_VERSION:
            raise InvalidThreshold(
                f"{where}: format version {raw.get('format_version')!r}; this release reads "
                f"version {FORMAT_VERSION}"
            )
        values = raw.get("thresholds")
        if not isinstance(values, dict):
            raise InvalidThreshold(f"{where}: 'thresholds' must be an object of key: value")
        try:
            thresholds = Thresholds.from_values(values, version=version_of(values))
        except InvalidThreshold as exc:
            raise InvalidThreshold(f"{where}: {exc}") from None
        return cls(
            thresholds=thresholds,
            settings=dict(raw.get("settings") or {}),
            source=dict(raw.get("source") or {}),
            report=dict(raw.get("report") or {}),
            created_at=str(raw.get("created_at") or ""),
        )


def version_of(values: dict[str, Any]) -> str:
    """The version alerts carry under fitted values: ``fit-`` and a hash of the values, so that
    two files with the same values stamp the same version and different ones never collide."""
    digest = hashlib.sha256(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"fit-{digest[:8]}"


def _json_value(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def write_fitted(path: Path, fitted: FittedFile) -> Path:
    """Write ``fitted`` as indented JSON (a team reads and reviews it before it goes live)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(fitted.to_dict(), option=orjson.OPT_INDENT_2))
    return path


def read_fitted(path: Path) -> FittedFile:
    """Read and validate a fitted file; :class:`InvalidThreshold` says why one is refused."""
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidThreshold(f"no such file: {path}") from None
    except orjson.JSONDecodeError as exc:
        raise InvalidThreshold(f"{path}: not JSON ({exc})") from None
    return FittedFile.from_dict(raw, where=str(path))
