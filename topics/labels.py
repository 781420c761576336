"""The labels file: a platform's confirmed cases, one JSON object a line (contract 2.1).

A platform keeps what its teams confirmed: fraud cases, hijacked accounts, installments that
were not paid. ``lendwatch evaluate``, ``backtest --labels`` and ``fit`` read them in this one
form, and the simulator writes its ground truth in it. A line::

    {"case_id": "c-1042", "borrower_id": "b-00017", "category": "falsified_flow",
     "typology": "circular_transfer", "start": "2026-01-13T09:23:51+08:00",
     "end": "2026-03-09T00:13:40+08:00", "entities": ["b-00388", "acct-00388-1"]}

A delinquency case also names its installment: ``loan_id``, ``installment`` and ``due_date``.
Unknown fields are accepted and ignored, as in every input of the contract; the simulator puts
what it injected under ``detail``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from topics.names import CATEGORIES, DELINQUENCY_RISK
from topics.validate import (
    ContractError,
    choice_field,
    date_field,
    identifier_field,
    require_field,
    timestamp_field,
)

__all__ = ["CaseLabel", "LabelsError", "parse_label", "read_labels", "write_labels"]

MAX_ENTITIES = 1000


class LabelsError(ValueError):
    """A labels file with lines that break the contract; ``problems`` lists each one."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        shown = "; ".join(f"line {number}: {reason}" for number, reason in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{len(problems)} bad label line(s): {shown}{more}")


@dataclass(frozen=True, slots=True)
class CaseLabel:
    """One confirmed case of one borrower.

    A case counts as found when an alert of its ``category`` names its ``borrower_id`` or one
    of its ``entities`` (other borrowers, devices, IPs, accounts in the case) between ``start``
    and ``end`` + 48 h; a delinquency case is warned when such an alert on its installment
    comes at least 3 days before the end of its ``due_date`` (see ``streams.lab.scoring``).
    """

    case_id: str
    borrower_id: str
    category: str
    typology: str
    start: datetime
    end: datetime
    entities: tuple[str, ...] = ()
    loan_id: str | None = None
    installment: int | None = None
    due_date: date | None = None
    #: Free-form, ignored by lendwatch: what the simulator injected, a platform's notes.
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The line's JSON object: the contract's fields, then ``detail`` if there is one."""
        line: dict[str, Any] = {
            "case_id": self.case_id,
            "borrower_id": self.borrower_id,
            "category": self.category,
            "typology": self.typology,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "entities": list(self.entities),
        }
        if self.loan_id is not None:
            line["loan_id"] = self.loan_id
            line["installment"] = self.installment
            line["due_date"] = None if self.due_date is None else self.due_date.isoformat()
        if self.detail:
            line["detail"] = dict(self.detail)
        return line


def parse_label(value: Any) -> CaseLabel:
    """A label from one decoded JSON line, or :class:`ContractError` saying why not."""
    if not isinstance(value, Mapping):
        raise ContractError(f"a label must be a JSON object, got {type(value).__name__}")
    category = choice_field(value, "category", frozenset(CATEGORIES))
    start, end = timestamp_field(value, "start"), timestamp_field(value, "end")
    if end < start:
        raise ContractError("field 'end' is before 'start'")
    entities = value.get("entities") or []
    if not isinstance(entities, list) or len(entities) > MAX_ENTITIES:
        raise ContractError(f"field 'entities' must be a list of at most {MAX_ENTITIES} ids")
    for position in range(len(entities)):
        identifier_field({"entity": entities[position]}, "entity")
    loan_id = identifier_field(value, "loan_id", required=category == DELINQUENCY_RISK)
    installment: int | None = None
    due: date | None = None
    if loan_id is not None:
        raw = require_field(value, "installment")
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 10_000:
            raise ContractError(f"field 'installment' must be an integer 1..10000, got {raw!r}")
        installment, due = raw, date_field(value, "due_date")
    detail = value.get("detail")
    return CaseLabel(
        case_id=str(identifier_field(value, "case_id")),
        borrower_id=str(identifier_field(value, "borrower_id")),
        category=category,
        typology=str(identifier_field(value, "typology")),
        start=start,
        end=end,
        entities=tuple(entities),
        loan_id=loan_id,
        installment=installment,
        due_date=due,
        detail=detail if isinstance(detail, Mapping) else {},
    )


def read_labels(path: Path) -> list[CaseLabel]:
    """Every label of a labels file; :class:`LabelsError` names each bad line and why."""
    labels: list[CaseLabel] = []
    problems: list[tuple[int, str]] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                labels.append(parse_label(orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                problems.append((number, f"line is not JSON: {exc}"))
            except ContractError as exc:
                problems.append((number, str(exc)))
    if problems:
        raise LabelsError(problems)
    return labels


def write_labels(path: Path, labels: Iterable[CaseLabel]) -> int:
    """Write one label a line; returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("wb") as out:
        for label in labels:
            out.write(orjson.dumps(label.to_dict(), option=orjson.OPT_APPEND_NEWLINE))
            written += 1
    return written


def iter_labels(labels: Iterable[CaseLabel | Mapping[str, Any]]) -> Iterator[CaseLabel]:
    """Labels given as records or as their JSON objects, as records."""
    for label in labels:
        yield label if isinstance(label, CaseLabel) else parse_label(label)
