"""JSON encodings of what the pipeline publishes: alerts and dead letters."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson

from topics.records import Alert, DeadLetter

__all__ = ["alert_to_dict", "dead_letter", "encode_alert", "encode_dead_letter"]


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "ts": alert.ts,
        "emitted_at": alert.emitted_at,
        "category": alert.category,
        "detector": alert.detector,
        "severity": alert.severity,
        "score": alert.score,
        "borrower_id": alert.borrower_id,
        "reasons": [
            {"code": r.code, "message": r.message, "observed": r.observed, "threshold": r.threshold}
            for r in alert.reasons
        ],
        "evidence": alert.evidence,
        "detector_version": alert.detector_version,
        "thresholds_version": alert.thresholds_version,
        "episode": alert.episode,
        "loan_id": alert.loan_id,
        "installment": alert.installment,
        "due_date": alert.due_date,
        "schema_version": alert.schema_version,
    }


def encode_alert(alert: Alert) -> bytes:
    return orjson.dumps(alert_to_dict(alert))


def dead_letter(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    received_at: datetime,
) -> DeadLetter:
    """Wrap a refused record whole: base64 keeps bytes that are not UTF-8 intact."""
    return DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        reason=reason,
        value_b64=base64.b64encode(value or b"").decode("ascii"),
        key_b64=None if key is None else base64.b64encode(key).decode("ascii"),
        received_at=received_at,
    )


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return orjson.dumps(
        {
            "source_topic": letter.source_topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "reason": letter.reason,
            "value_b64": letter.value_b64,
            "key_b64": letter.key_b64,
            "received_at": letter.received_at,
            "schema_version": letter.schema_version,
        }
    )
