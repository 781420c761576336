"""The changelog form of a borrower's state: compact, lossless, readable in its old form."""

from __future__ import annotations

import zlib
from datetime import date
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

import detectors.state
from detectors.state import BorrowerState, InflowHistory, Installment


def _state() -> BorrowerState:
    state = BorrowerState(borrower_id="b-7", partition=300)
    for day in range(20_000, 20_090):
        state.inflows.add(day, 1234.56 + day % 7 * 0.1)
    for number in range(1, 7):
        installment = Installment(
            loan_id="ln-7-1",
            number=number,
            due_date=date(2026, number, 5),
            amount_due=Decimal("1500.00"),
        )
        installment.payments.append((1.77e9 + number, Decimal("1500.00"), f"rp-{number}"))
        state.installments[f"ln-7-1#{number}"] = installment
    state.logins.known_ips = {f"111.196.{i}.{i * 3}": 20_089 for i in range(16)}
    state.slots["machine_flow"] = {"n": 583, "g": 18007.614558437912, "d": [485146.6506911768] * 9}
    return state


def test_a_state_survives_its_changelog_form() -> None:
    state = _state()
    assert BorrowerState.from_bytes(state.to_bytes()).to_dict() == state.to_dict()


def test_the_changelog_form_is_a_fraction_of_the_json() -> None:
    state = _state()
    assert len(state.to_bytes()) < len(orjson.dumps(state.to_dict())) / 2


def test_the_partition_is_read_without_decoding() -> None:
    assert BorrowerState.partition_of(_state().to_bytes()) == 300


def test_plain_json_of_earlier_changelogs_is_still_read() -> None:
    state = _state()
    blob = orjson.dumps(state.to_dict())
    assert BorrowerState.from_bytes(blob).to_dict() == state.to_dict()
    assert BorrowerState.partition_of(blob) == 300


def test_anything_else_is_refused() -> None:
    with pytest.raises(ValueError, match="not a borrower state"):
        BorrowerState.from_bytes(b"\x00\x01garbage")


def test_inflow_sums_are_kept_to_the_cent() -> None:
    inflows = InflowHistory()
    for amount in (0.1, 0.2, 2580.04):
        inflows.add(20_000, amount)
    assert inflows.total(20_000, 20_001) == (2580.34, 1)


def test_a_closed_day_keeps_whole_units_written_as_integers() -> None:
    inflows = InflowHistory()
    for day, amount in ((20_000, 0.4), (20_000, 0.4), (20_000, 2580.04), (20_001, 9.5)):
        inflows.add(day, amount)

    # The payments' cents added up (2580.84) before the day closed, then the day was rounded.
    assert inflows.total(20_000, 20_001) == (2581.0, 1)
    assert inflows.total(20_001, 20_002) == (9.5, 1)  # the day under way keeps its cents
    assert [v for v in inflows.compact() if v] == [2581, 9.5]
    assert isinstance(inflows.compact()[20_000 % 96], int)


@pytest.mark.parametrize(("tag", "level"), [(b"LS1", 6), (b"LS2", 9)])
def test_a_record_of_an_earlier_format_is_still_read(tag: bytes, level: int) -> None:
    """LS1 and LS2: deflated against a JSON dictionary, as written before the zstd records."""
    state = _state()
    name = f"state_dictionary_{tag[-1:].decode()}.json"
    dictionary = (Path(detectors.state.__file__).parent / name).read_bytes()
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    body = compressor.compress(orjson.dumps(state.to_dict())) + compressor.flush()
    blob = tag + (300).to_bytes(2, "big") + body

    assert BorrowerState.from_bytes(blob).to_dict() == state.to_dict()
    assert BorrowerState.partition_of(blob) == 300
    assert state.to_bytes()[:3] == b"LS3"


def test_a_record_read_against_the_wrong_dictionary_fails_loudly() -> None:
    """A record's tag names its dictionary: one tagged wrongly is refused, never misread."""
    blob = _state().to_bytes()

    with pytest.raises((zlib.error, orjson.JSONDecodeError)):
        BorrowerState.from_bytes(b"LS2" + blob[3:])
