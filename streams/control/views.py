"""What the console's views show, as plain data: thresholds, the collections queue, an alert.

Pure functions of what the store, the risk view and the alert board hold, so that each is
tested without Redis or a broker; :mod:`streams.control.console` serves them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from detectors.registry import REGISTRY
from detectors.thresholds import TUNABLES, InvalidThreshold, format_value
from streams.control.store import (
    AuditEntry,
    Candidate,
    ThresholdVersion,
    describe_tunable,
)

__all__ = [
    "NEXT_STEPS",
    "ChangeRequest",
    "alert_view",
    "detector_thresholds",
    "parse_change_request",
    "queue_view",
    "thresholds_view",
]

#: History entries sent to the page, newest first; ``lendwatch thresholds history`` has all.
HISTORY_SHOWN = 50

#: What a team does next with an alert of each category, shown on the alert's page.
NEXT_STEPS: dict[str, list[str]] = {
    "falsified_flow": [
        "Hold any disbursement or limit increase not yet made for this borrower.",
        "Ask for the statements of the accounts the reasons name and compare them with the "
        "turnover the application declared.",
        "Look for the same counterparties among the platform's other borrowers (a ring).",
    ],
    "abnormal_behaviour": [
        "Freeze payout-account changes and drawdowns until the borrower is reached.",
        "Call the borrower on the number on file, not one given in this session.",
        "If the borrower did not act, reset their credentials and revoke the device.",
    ],
    "delinquency_risk": [
        "Contact the borrower before the due date: remind, and ask what is coming in.",
        "Offer a payment plan where the inflows fell with the sector's.",
        "Check the installment's payments after the grace period before escalating.",
    ],
}
_VERDICT_STEP = (
    "Record a verdict: confirmed, dismissed (a benign case) or duplicate (another alert "
    "covers it); the feedback topic keeps it for tuning."
)


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "action": entry.action,
        "version": entry.version,
        "author": entry.author,
        "at": entry.at,
        "reason": entry.reason,
        "changes": {
            k: [format_value(old), format_value(new)] for k, (old, new) in entry.changes.items()
        },
    }


def thresholds_view(
    live: ThresholdVersion, candidate: Candidate | None, history: Sequence[AuditEntry]
) -> dict[str, Any]:
    """The thresholds as the page shows them: every tunable with its live value (and its
    shadow value when a candidate differs), range and meaning; the history newest first.
    Values are sent as text in the form a team types them (``10,7,5,3``)."""
    in_force = live.thresholds().values()
    shadow = candidate.thresholds().values() if candidate else {}
    values = []
    for key in TUNABLES:
        declared = describe_tunable(key)
        values.append(
            {
                **declared,
                "default": format_value(declared["default"]),
                "low": format_value(declared["low"]),
                "high": format_value(declared["high"]),
                "value": format_value(in_force[key]),
                "changed": in_force[key] != declared["default"],
                "shadow": (
                    format_value(shadow[key]) if shadow and shadow[key] != in_force[key] else None
                ),
            }
        )
    return {
        "live": {
            "label": live.label,
            "author": live.author,
            "at": live.at,
            "reason": live.reason,
            "action": live.action,
        },
        "candidate": (
            {
                "label": candidate.label,
                "base": f"v{candidate.base}",
                "author": candidate.author,
                "at": candidate.at,
                "reason": candidate.reason,
                "changes": {
                    k: [format_value(old), format_value(new)]
                    for k, (old, new) in candidate.changes.items()
                },
            }
            if candidate
            else None
        ),
        "values": values,
        "history": [_entry(e) for e in reversed(history[-HISTORY_SHOWN:])],
        "history_total": len(history),
    }


@dataclass(frozen=True)
class ChangeRequest:
    """A change asked for on the page: values by key (as typed) and why. Who is the signed-in
    identity, never a field of the request."""

    changes: dict[str, object]
    reason: str


def parse_change_request(body: object, *, changes: bool) -> ChangeRequest:
    """Check the shape of a POSTed body before anything reaches Redis.

    The values themselves are checked by the store, in full, as for the command line. A
    reason is required for every action here, shadow and discard included: the audit trail
    is what a second person reads. A body that names an ``author`` is refused: the audit
    records who signed in, not what was typed.
    """
    if not isinstance(body, dict):
        raise InvalidThreshold('send a JSON object: {"changes": {...}, "reason": "..."}')
    wanted: dict[str, object] = {}
    if changes:
        given = body.get("changes")
        if not isinstance(given, dict) or not given:
            raise InvalidThreshold('"changes" must name at least one threshold and its value')
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float | list):
                raise InvalidThreshold(f"{key}: {value!r} is not a value")
            wanted[str(key)] = value
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidThreshold("a reason is required: say why, for the audit trail")
    if "author" in body:
        raise InvalidThreshold("send no author: the audit trail records the signed-in identity")
    return ChangeRequest(wanted, reason.strip())


def _next_due(installments: Iterable[Mapping[str, Any]]) -> str:
    return min((str(i.get("due_date") or "") for i in installments), default="") or ""


def queue_view(
    views: Sequence[Mapping[str, Any]],
    *,
    search: str = "",
    min_score: float = 0.0,
    due_within_days: int | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """The collections queue as the page shows it: riskiest first (as ``lendwatch risk``
    reads it), with each borrower's next due date and last alert, filtered by borrower id
    (a part of it), lowest score and the days until the next due date."""
    needle = search.strip().lower()
    rows = []
    for view in views:
        installments = list(view.get("open_installments") or [])
        due = _next_due(installments)
        score = float(view.get("score") or 0.0)
        row: dict[str, Any] = {
            "borrower_id": view.get("borrower_id"),
            "score": score,
            "scored_at": view.get("scored_at") or None,
            "scored_installment": view.get("scored_installment") or None,
            "open_installments": installments,
            "next_due": due or None,
            "last_alert": view.get("last_alert"),
            "updated_at": view.get("updated_at"),
        }
        if needle and needle not in str(row["borrower_id"]).lower():
            continue
        if score < min_score:
            continue
        if due_within_days is not None and today is not None:
            if not due or (date.fromisoformat(due[:10]) - today).days > due_within_days:
                continue
        rows.append(row)
    return {"rows": rows, "shown": len(rows), "read": len(views)}


#: Each detector's section of the thresholds, by the name alerts carry.
_SECTIONS = {row.detector.name: row.detector.section for row in REGISTRY}


def detector_thresholds(detector: str, version: ThresholdVersion) -> dict[str, str]:
    """The detector's thresholds in ``version``, as typed (``10,7,5,3``)."""
    section = _SECTIONS.get(detector)
    if not section:
        return {}
    values = version.thresholds().values()
    return {key: format_value(values[key]) for key in TUNABLES if key.startswith(f"{section}.")}


def alert_view(
    alert: Mapping[str, Any],
    *,
    history: Sequence[Mapping[str, Any]],
    verdicts: Sequence[Mapping[str, Any]],
    thresholds: Mapping[str, str] | None,
    history_complete: bool = True,
) -> dict[str, Any]:
    """One alert's page: the alert as published (reasons with observed values and
    thresholds, evidence as masked), the thresholds of its version for its detector, the
    borrower's other alerts, the verdicts given, and what to do next."""
    alert_id = alert.get("alert_id")
    return {
        "alert": dict(alert),
        "thresholds": dict(thresholds) if thresholds is not None else None,
        "history": [dict(h) for h in history if h.get("alert_id") != alert_id],
        "history_complete": history_complete,
        "verdicts": [dict(v) for v in verdicts],
        "next_steps": [*NEXT_STEPS.get(str(alert.get("category")), []), _VERDICT_STEP],
    }
