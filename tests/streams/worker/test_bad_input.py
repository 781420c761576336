"""Bad input at volume: every record is applied, recognised as a duplicate, or dead-lettered
with a reason; nothing raises, nothing disappears. The same path as the worker's batches."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from topics import ContractError, Source, decode
from topics.codec import dead_letter, encode_dead_letter

BASE = datetime(2024, 3, 1, tzinfo=UTC)
BORROWERS = ["b-1", "b-2", "借款人-3", "b-\u200d4"]

weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "\ud7ff", "🏦" * 50, "a" * 10_000, "\u202e", "NaN"]),
)
weird_number = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e-320, 1e308, "12.34", "1e999", "-1", True, None]),
)
weird_time = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.isoformat()  # naive: no offset
    ),
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat()),
    st.sampled_from(["", "yesterday", "2024-02-30T00:00:00Z", "2024-03-01T25:00:00+08:00"]),
    weird_number,
)


def _valid(source: Source, n: int, borrower: str, minutes: int) -> dict[str, Any]:
    ts = (BASE + timedelta(minutes=minutes)).isoformat()
    if source is Source.TRANSACTIONS:
        return {
            "event_id": f"tx-{n}",
            "ts": ts,
            "borrower_id": borrower,
            "account_id": f"acct-{borrower}",
            "counterparty_id": f"cp-{n % 7}",
            "direction": "in" if n % 2 else "out",
            "amount": 100 + n,
            "channel": "bank_transfer",
        }
    if source is Source.LOGINS:
        return {
            "event_id": f"lg-{n}",
            "ts": ts,
            "borrower_id": borrower,
            "device_id": f"dev-{n % 3}",
            "ip": f"10.0.0.{n % 250}",
            "success": n % 4 != 0,
        }
    return {
        "event_id": f"rp-{n}",
        "ts": ts,
        "borrower_id": borrower,
        "loan_id": "loan-1",
        "installment": 1 + n % 3,
        "kind": "payment",
        "amount": 50 + n,
    }


@st.composite
def records(draw: st.DrawFn) -> tuple[Source, bytes | None, bytes | None]:
    """One Kafka record: valid, a valid one with a field broken, or plain garbage."""
    source = draw(st.sampled_from(list(Source)))
    borrower = draw(st.sampled_from(BORROWERS))
    value = _valid(source, draw(st.integers(0, 40)), borrower, draw(st.integers(-600, 600)))
    kind = draw(st.sampled_from(["valid", "broken_field", "extra_field", "garbage", "key"]))
    key: bytes | None = borrower.encode()
    if kind == "broken_field":
        field = draw(st.sampled_from(sorted(value)))
        value[field] = draw(st.one_of(weird_text, weird_number, weird_time, st.none()))
    elif kind == "extra_field":
        value[draw(weird_text)] = draw(weird_number)
    elif kind == "garbage":
        return source, key, draw(st.one_of(st.binary(max_size=200), st.none()))
    elif kind == "key":
        key = draw(st.one_of(st.none(), st.binary(max_size=20)))
    # The standard library writes what orjson will not: 30-digit integers, NaN, lone surrogates.
    return source, key, json.dumps(value, default=str).encode()


def _ingest(batch: list[tuple[Source, bytes | None, bytes | None]]) -> tuple[int, int, int]:
    """What the worker does with a batch: (applied, duplicates, dead-lettered)."""
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    inputs: list[Input] = []
    dead = 0
    for offset, (source, key, value) in enumerate(batch):
        try:
            inputs.append(Input(0, source, decode(source, key, value), offset))
        except ContractError as exc:
            assert str(exc), "a dead letter without a reason"
            letter = dead_letter(
                source_topic=source.value,
                partition=0,
                offset=offset,
                key=key,
                value=value,
                reason=str(exc),
                received_at=BASE,
            )
            assert orjson.loads(encode_dead_letter(letter))["reason"] == str(exc)
            dead += 1
    result = asyncio.run(engine.process(inputs))
    assert all(reason for _, reason in result.failed)
    dead += len(result.failed)
    applied = len(inputs) - len(result.failed) - result.duplicates - result.redelivered
    return applied, result.duplicates, dead


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=40))
def test_every_record_is_applied_or_dead_lettered_with_a_reason(
    batch: list[tuple[Source, bytes | None, bytes | None]],
) -> None:
    applied, duplicates, dead = _ingest(batch)

    assert applied >= 0
    assert applied + duplicates + dead == len(batch)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=60), st.randoms())
def test_duplicate_event_ids_are_applied_once_in_any_order(numbers: list[int], rng: Any) -> None:
    batch = [
        (Source.TRANSACTIONS, b"b-1", orjson.dumps(_valid(Source.TRANSACTIONS, n, "b-1", n)))
        for n in numbers
    ]
    rng.shuffle(batch)  # out of event-time order too

    applied, duplicates, dead = _ingest(batch)

    assert (applied, duplicates, dead) == (len(set(numbers)), len(numbers) - len(set(numbers)), 0)
