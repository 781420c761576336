"""What a team looks into after a run: the cases behind the scores, by the scorer's rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, tzinfo
from pathlib import Path
from typing import Any

import orjson

# The scorer's own judgement of each alert and installment, so that a review adds up to its
# card: one rule, read here line by line.
from streams.lab.scoring import (
    PLATFORM_ZONE,
    _case,
    _in_time,
    _installments,
    _judged,
    _labelled,
    _seen,
)
from topics.labels import CaseLabel, iter_labels
from topics.records import Alert

__all__ = ["review", "write_review"]


def review(
    alerts: Iterable[Alert | Mapping[str, Any]],
    labels: Iterable[CaseLabel | Mapping[str, Any]],
    *,
    zone: tzinfo = PLATFORM_ZONE,
) -> list[dict[str, Any]]:
    """What a team looks into after a run, by :func:`~streams.lab.scoring.score`'s rule:
    every case no alert found (``missed``), every missed installment not warned
    ``WARN_AHEAD`` before the end of its due date (``late_warning``), and every false
    alert-day (``false``) with its alerts' detector, time, episode and reasons, saying
    whether its borrower has a case of the category (the alert fell outside the case's
    window) or none.

    >>> review([], [{"case_id": "c-1", "borrower_id": "b-1", "category": "falsified_flow",
    ...     "typology": "pass_through", "start": "2024-03-01T00:00:00+00:00",
    ...     "end": "2024-03-02T00:00:00+00:00"}])[0]["kind"]
    'missed'
    """
    raw = sorted(
        ((_seen(alert), _messages(alert)) for alert in alerts), key=lambda pair: pair[0].ts
    )
    seen = [alert for alert, _ in raw]
    parsed = list(iter_labels(labels))
    cases = [_case(label) for label in parsed]
    found: set[int] = set()
    days: dict[tuple[str, str, date], list[dict[str, Any]]] = {}
    true_days: set[tuple[str, str, date]] = set()
    for (alert, finds, true), (_, messages) in zip(_judged(seen, cases), raw, strict=True):
        found.update(finds)
        key = (alert.borrower_id, alert.category, alert.ts.astimezone(zone).date())
        if true:
            true_days.add(key)
        entry = {"detector": alert.detector, "ts": alert.ts.isoformat(), "episode": alert.episode}
        days.setdefault(key, []).append({**entry, "reasons": messages})
    lines: list[dict[str, Any]] = []
    for position, label in enumerate(parsed):
        if position not in found:
            lines.append({"kind": "missed", **label.to_dict()})
    for position, end_of_due, alerted in _installments(seen, cases, zone):
        if alerted is None or not _in_time(alerted, end_of_due):
            first_alert = None if alerted is None else alerted.isoformat()
            label = parsed[position]
            lines.append({"kind": "late_warning", **label.to_dict(), "first_alert": first_alert})
    labelled = _labelled(cases)
    for (borrower, category, day), entries in days.items():
        if (borrower, category, day) in true_days:
            continue
        lines.append(
            {
                "kind": "false",
                "borrower_id": borrower,
                "category": category,
                "day": day.isoformat(),
                "borrower_has_case": (category, borrower) in labelled,
                "alerts": entries,
            }
        )
    return lines


def write_review(path: Path, lines: Iterable[Mapping[str, Any]]) -> int:
    """Review lines (:func:`review`, each with whatever names its run) to a JSON-lines file;
    how many."""
    written = 0
    with path.open("wb") as out:
        for line in lines:
            out.write(orjson.dumps(line, option=orjson.OPT_NON_STR_KEYS) + b"\n")
            written += 1
    return written


def _messages(alert: Alert | Mapping[str, Any]) -> list[str]:
    if isinstance(alert, Mapping):
        return [str(r.get("message")) for r in alert.get("reasons") or ()]
    return [r.message for r in alert.reasons]
