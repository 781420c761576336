"""`lendwatch fit`: the search over a tiny history whose best value is known, the refusal, the
file's round trip."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from detectors.base import ABNORMAL_BEHAVIOUR
from detectors.scenarios import at, login
from detectors.thresholds import TUNABLES, InvalidThreshold, Thresholds
from streams.lab.fit import (
    MIN_FIT_CASES,
    FitRefused,
    fit,
    grid,
    parse_targets,
    searched_keys,
    split_borrowers,
)
from streams.lab.fitted import FittedFile, read_fitted, write_fitted
from streams.lab.replay import Decoded, partition_for
from topics.labels import CaseLabel
from topics.names import Source
from topics.records import Login

#: Two leaked-password runs, each from one address over six borrowers on a bot phone; the
#: shipped ``credential_stuffing.min_borrowers`` (8) misses both.
ATTACKS = {"203.0.113.7": 3, "198.51.100.9": 9}
VICTIMS_PER_ATTACK = 6
#: Two offices, each where four borrowers mistyped on phones new to them the same morning:
#: flagged once ``min_borrowers`` falls to 4. So the best value lies in 5..6.
OFFICES = {"192.0.2.10": 5, "192.0.2.20": 11}
STAFF_PER_OFFICE = 4
SPLIT_SEED = 1

History = tuple[Decoded, list[CaseLabel]]


def _history() -> tuple[Decoded, list[CaseLabel]]:
    """Logins of attacked borrowers, office staff and bystanders, each with a daily habit."""
    logins: list[Login] = []
    labels: list[CaseLabel] = []
    borrowers: list[str] = []
    for ip, day in ATTACKS.items():
        for i in range(VICTIMS_PER_ATTACK):
            borrower = f"v-{day}-{i}"
            borrowers.append(borrower)
            tried = at(days=day, hours=2, minutes=4 * i)
            logins.append(
                login(
                    f"{borrower}-try",
                    tried,
                    device="bot-x",
                    ip=ip,
                    success=False,
                    borrower_id=borrower,
                    user_agent="curl/8.0",
                )
            )
            labels.append(
                CaseLabel(
                    case_id=f"case-{borrower}",
                    borrower_id=borrower,
                    category=ABNORMAL_BEHAVIOUR,
                    typology="credential_stuffing",
                    start=tried - timedelta(minutes=1),
                    end=tried + timedelta(hours=1),
                    entities=(ip,),
                )
            )
    for ip, day in OFFICES.items():
        for i in range(STAFF_PER_OFFICE):
            borrower = f"o-{day}-{i}"
            borrowers.append(borrower)
            typo = at(days=day, hours=1, minutes=9 * i)
            logins.append(
                login(
                    f"{borrower}-typo",
                    typo,
                    device=f"new-{borrower}",
                    ip=ip,
                    success=False,
                    borrower_id=borrower,
                    user_agent=f"Other/{i}",
                )
            )
    borrowers += [f"b-{i}" for i in range(20)]
    for number, borrower in enumerate(borrowers):
        for day in range(0, 16, 2):
            logins.append(
                login(
                    f"{borrower}-d{day}",
                    at(days=day, hours=8, minutes=number),
                    device=f"own-{borrower}",
                    ip=f"10.{number}.0.1",
                    borrower_id=borrower,
                    user_agent="LendApp/3.1 (Android 14; Pixel 7)",
                )
            )
    logins.sort(key=lambda record: record.ts)
    streams = {partition_for(b, 2): {Source.LOGINS.value} for b in borrowers}
    decoded = Decoded(
        records=[(Source.LOGINS, record) for record in logins],
        streams=streams,
        rejected=[],
        partitions=2,
    )
    return decoded, labels


@pytest.fixture(scope="module")
def history() -> History:
    return _history()


def test_the_search_finds_the_value_the_labels_call_for(history: History) -> None:
    decoded, labels = history
    said: list[str] = []
    fitted = fit(
        decoded,
        labels,
        targets={ABNORMAL_BEHAVIOUR: 0.9},
        holdout=0.25,
        seed=SPLIT_SEED,
        progress=said.append,
    )

    part = fitted.report["categories"][ABNORMAL_BEHAVIOUR]
    assert part["cases"]["fit"] >= MIN_FIT_CASES and part["cases"]["held_out"] >= 1
    # The defaults find nothing, on either share; the fitted value finds every case, and no
    # office: the only value of the grid around 8 in 5..6 is 6.
    for share in ("fit", "held_out"):
        assert part["before"][share]["recall"] == 0.0
        assert part["after"][share]["recall"] == 1.0
        assert part["after"][share]["precision"] == 1.0
    assert fitted.changes() == {"credential_stuffing.min_borrowers": (8, 6)}
    assert part["moves"] == [{"key": "credential_stuffing.min_borrowers", "from": 8, "to": 6}]
    # The tunables before it were tried and left where they were; once every case of the fit
    # share is found with no false alert-day, nothing can rank higher and the search stops.
    keys = searched_keys(ABNORMAL_BEHAVIOUR)
    tried = keys.index("credential_stuffing.min_borrowers") + 1
    assert part["searched"] == len(keys) and tried < len(keys)
    assert part["stopped"].startswith(f"stopped after {tried} of {len(keys)} tunables")
    assert part["engine_runs"] > 3 * tried
    assert fitted.thresholds.version.startswith("fit-")
    # One line per tunable tried, the move among them, then why it stopped.
    assert len(said) == tried + 1 and said[-1] == f"{ABNORMAL_BEHAVIOUR}: {part['stopped']}"
    assert said[tried - 1].endswith(
        "credential_stuffing.min_borrowers: 8 → 6 (fit share: recall 1.000, precision 1.000)"
    )


def test_a_pool_of_forked_workers_finds_the_same(history: History) -> None:
    decoded, labels = history
    alone = fit(decoded, labels, targets={ABNORMAL_BEHAVIOUR: 0.9}, holdout=0.25, seed=SPLIT_SEED)
    pooled = fit(
        decoded, labels, targets={ABNORMAL_BEHAVIOUR: 0.9}, holdout=0.25, seed=SPLIT_SEED, jobs=2
    )
    assert pooled.thresholds == alone.thresholds
    assert pooled.report["categories"] == alone.report["categories"]


def test_too_few_cases_refuses_before_any_run_and_says_why(history: History) -> None:
    decoded, labels = history
    with pytest.raises(FitRefused) as refused:
        fit(decoded, labels[:3], targets={ABNORMAL_BEHAVIOUR: 0.9}, holdout=0.25)
    message = str(refused.value)
    assert f"{ABNORMAL_BEHAVIOUR}: " in message and f"at least {MIN_FIT_CASES}" in message
    assert "of 3 in all" in message
    # A category without a single case is refused the same way, named.
    with pytest.raises(FitRefused, match="falsified_flow: 0 confirmed"):
        fit(decoded, labels, targets={"falsified_flow": 0.9, ABNORMAL_BEHAVIOUR: 0.9})


def test_targets_and_split_are_checked() -> None:
    assert parse_targets("delinquency_risk=0.6") == {"delinquency_risk": 0.6}
    assert set(parse_targets(None)) == {"falsified_flow", ABNORMAL_BEHAVIOUR, "delinquency_risk"}
    for bad in ("fraud=0.9", "falsified_flow=high", "falsified_flow=1.5", "falsified_flow"):
        with pytest.raises(FitRefused):
            parse_targets(bad)
    ids = [f"b-{i}" for i in range(1000)]
    fit_share, held = split_borrowers(ids, 0.3, seed=4)
    assert fit_share | held == set(ids) and not fit_share & held
    assert 250 < len(held) < 350
    assert split_borrowers(reversed(ids), 0.3, seed=4) == (fit_share, held)
    assert split_borrowers(ids, 0.3, seed=5) != (fit_share, held)
    with pytest.raises(FitRefused):
        split_borrowers(ids, 1.0, seed=4)


def test_the_grid_stays_in_range_and_whole_where_whole() -> None:
    whole = TUNABLES["credential_stuffing.min_borrowers"]  # 8, range 2..10000
    assert grid(whole, 8) == [6, 12, 4, 16]
    assert grid(whole, 2) == [3, 4]  # 1.5 and 1 clip to 2, the current value
    assert grid(whole, 8, points=2) == [4, 16]
    ratio = TUNABLES["credential_stuffing.min_failure_ratio"]  # range 0..1
    assert grid(ratio, 0.8) == [0.6, 1.0, 0.4]
    assert grid(ratio, 0.0) == [0.05, 0.1, 0.25]  # from nothing: steps of the range
    assert grid(TUNABLES["delinquency.check_days_before_due"], (10, 7, 5, 3)) == []
    assert "delinquency.platform_utc_offset_hours" not in searched_keys("delinquency_risk")


def test_the_fitted_file_round_trips_and_is_validated_as_any_change(tmp_path: Path) -> None:
    thresholds = Thresholds().with_changes(
        {"credential_stuffing.min_borrowers": 6, "delinquency.check_days_before_due": "9,4"},
        version="x",
    )
    written = FittedFile(thresholds, settings={"seed": 1}, report={"wall_seconds": 2.5})
    path = write_fitted(tmp_path / "fitted.json", written)
    back = read_fitted(path)
    assert back.thresholds.values() == thresholds.values()
    assert back.report == {"wall_seconds": 2.5} and back.settings == {"seed": 1}
    assert back.changes() == {
        "credential_stuffing.min_borrowers": (8, 6),
        "delinquency.check_days_before_due": ((10, 7, 5, 3), (9, 4)),
    }
    assert back.thresholds.version == read_fitted(path).thresholds.version

    raw = orjson.loads(path.read_bytes())
    cases: dict[str, tuple[dict[str, object], str]] = {
        "out of range": ({"credential_stuffing.min_borrowers": 1}, "out of range"),
        "unknown key": ({"credential_stuffing.min_victims": 4}, "no such threshold"),
        "wrong type": ({"credential_stuffing.min_borrowers": "many"}, "not a whole number"),
        "a constraint broken": (
            {"device_ring.min_applicants": 4, "device_ring.min_borrowers": 3},
            "min_applicants must not exceed",
        ),
    }
    for values, reason in cases.values():
        broken = {**raw, "thresholds": {**raw["thresholds"], **values}}
        path.write_bytes(orjson.dumps(broken))
        with pytest.raises(InvalidThreshold, match=reason):
            read_fitted(path)
    path.write_bytes(orjson.dumps({**raw, "format_version": 99}))
    with pytest.raises(InvalidThreshold, match="format version 99"):
        read_fitted(path)
    path.write_bytes(b'{"thresholds": {}}')
    with pytest.raises(InvalidThreshold, match="not a lendwatch fitted file"):
        read_fitted(path)
