"""Takeovers, with a new device or a replayed one; app updates and held drawdowns are benign."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from sim import Simulation
from tests.sim.helpers import Index, day_of, instant, labelled_ids, labels_of, values_of
from topics.names import Source


def _held(index: Index, borrower_id: str, drawdown: datetime) -> None:
    """A drawdown right after a payout change is held: no disbursement, no schedule."""
    later = drawdown + timedelta(days=4)
    assert not any(
        tx["counterparty_id"] == "lender-disburse" and drawdown <= instant(tx) <= later
        for tx in index[Source.TRANSACTIONS][borrower_id]
    )
    assert not any(
        r["kind"] == "scheduled" and drawdown <= instant(r) <= later
        for r in index[Source.REPAYMENTS][borrower_id]
    )


def test_takeover_is_a_failure_burst_then_a_new_device_payout_change_and_drawdown(
    sim: Simulation, index: Index
) -> None:
    for label in labels_of(sim, "account_takeover"):
        mine = index[Source.LOGINS][label.borrower_id]
        start = instant(label.start)
        before = [v for v in mine if instant(v) < start]
        attack = [v for v in mine if v["device_id"] == label.detail["device_id"]]
        assert before and day_of(attack[0]) >= 7
        assert label.detail["device_id"] not in {v["device_id"] for v in before}
        home = Counter(v["geo"]["city"] for v in before).most_common(1)[0][0]
        assert label.detail["city"] != home
        assert {v["ip"] for v in attack} == {label.detail["ip"]}

        failures = [v for v in attack if not v["success"]]
        assert 6 <= len(failures) == label.detail["failed_logins"] <= 15
        span = instant(failures[-1]) - instant(failures[0])
        assert timedelta(minutes=5) <= span <= timedelta(minutes=20)
        actions = [v["action"] for v in attack if v["success"]]
        assert actions == ["login", "payout_account_change", "drawdown"]
        success, change, drawdown = (instant(v) for v in attack if v["success"])
        assert instant(failures[-1]) < success
        assert change - success <= timedelta(hours=1)
        assert success < drawdown and drawdown - success <= timedelta(hours=2)
        assert attack[-1]["amount"] == label.detail["drawdown_amount"]
        assert instant(label.end) == drawdown
        _held(index, label.borrower_id, drawdown)


def test_device_replay_takeover_spoofs_the_known_device_from_a_new_place_and_hour(
    sim: Simulation, index: Index
) -> None:
    for label in labels_of(sim, "account_takeover_device_replay"):
        detail = label.detail
        mine = index[Source.LOGINS][label.borrower_id]
        start = instant(label.start)
        before = [v for v in mine if instant(v) < start]
        assert detail["device_id"] in {v["device_id"] for v in before if v["success"]}
        assert detail["ip"] not in {v["ip"] for v in before}
        assert detail["user_agent"] not in {v["user_agent"] for v in before}
        home = Counter(v["geo"]["city"] for v in before).most_common(1)[0][0]
        assert detail["city"] != home
        assert start.hour < 6  # before dawn

        attack = [v for v in mine if v["ip"] == detail["ip"]]
        assert {(v["device_id"], v["user_agent"]) for v in attack} == {
            (detail["device_id"], detail["user_agent"])
        }
        failures = [v for v in attack if not v["success"]]
        assert 4 <= len(failures) == detail["failed_logins"] <= 12
        assert [v["action"] for v in attack if v["success"]] == [
            "login",
            "payout_account_change",
            "drawdown",
        ]
        success, change, drawdown = (instant(v) for v in attack if v["success"])
        assert change - success <= timedelta(hours=1)
        assert drawdown - success <= timedelta(hours=2)
        _held(index, label.borrower_id, drawdown)


def test_app_updates_change_the_agent_version_but_not_the_phone(sim: Simulation) -> None:
    labelled = labelled_ids(sim)
    agents: dict[str, set[str]] = defaultdict(set)
    for v in values_of(sim, Source.LOGINS):
        if v["borrower_id"] not in labelled:
            agents[v["device_id"]].add(v["user_agent"])
    updated = [a for a in agents.values() if len(a) > 1]
    assert len(updated) >= 5
    for versions in updated:
        assert len({agent.split(" ", 1)[1] for agent in versions}) == 1  # one phone model


def test_a_benign_drawdown_after_a_payout_change_is_held_then_booked(
    sim: Simulation, index: Index
) -> None:
    labelled = labelled_ids(sim)
    held = 0
    for borrower_id, logins in index[Source.LOGINS].items():
        if borrower_id in labelled:
            continue
        changes = [instant(v) for v in logins if v["action"] == "payout_account_change"]
        for v in logins:
            if v["action"] == "drawdown" and any(
                timedelta(0) < instant(v) - c <= timedelta(days=1) for c in changes
            ):
                drawdown = instant(v)
                assert not any(
                    tx["counterparty_id"] == "lender-disburse"
                    and drawdown <= instant(tx) <= drawdown + timedelta(days=5)
                    for tx in index[Source.TRANSACTIONS][borrower_id]
                )
                booked = [
                    instant(r)
                    for r in index[Source.REPAYMENTS][borrower_id]
                    if r["kind"] == "scheduled" and instant(r) > drawdown
                ]
                assert not booked or min(booked) - drawdown >= timedelta(days=1)
                held += 1
    assert held >= 1
