"""Missed installments: unpaid after the grace, with varied pre-signals and weak cases."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sim import Simulation, SimulationConfig, simulate
from tests.sim.helpers import CONFIG, Index, instant, is_sales, labels_of, yuan
from topics.labels import CaseLabel
from topics.names import Source


def _check_missed(config: SimulationConfig, sim: Simulation, label: CaseLabel, by: Index) -> float:
    """Check one missed installment; return its inflow ratio (recent / baseline) or 0."""
    detail = label.detail
    due = date.fromisoformat(detail["due_date"])
    due_day = (due - config.start.date()).days
    assert 30 <= due_day <= config.days - 5
    grace_end = datetime.fromisoformat(f"{due + timedelta(days=3)}T23:59:59+08:00")
    if detail.get("later_installments_missed"):
        # Not cured: the borrower stays delinquent, the label runs to the end of the period.
        period_end = config.start + timedelta(days=config.days) - timedelta(seconds=1)
        assert instant(label.end) == max(grace_end, period_end)
    else:
        assert instant(label.end) == grace_end
    loan = [
        r for r in by[Source.REPAYMENTS][label.borrower_id] if r["loan_id"] == detail["loan_id"]
    ]
    scheduled = {r["installment"]: r for r in loan if r["kind"] == "scheduled"}
    assert scheduled[detail["installment"]]["due_date"] == detail["due_date"]
    assert instant(scheduled[1]) < config.start + timedelta(hours=1)

    def paid_by(installment: int, when: datetime) -> Decimal:
        return sum(
            (
                yuan(r)
                for r in loan
                if r["kind"] == "payment" and r["installment"] == installment and instant(r) <= when
            ),
            Decimal(0),
        )

    amount_due = Decimal(detail["amount_due"])
    assert paid_by(detail["installment"], grace_end) < amount_due / 2
    if "cured" not in detail:
        assert all(
            paid_by(k, grace_end + timedelta(days=60)) == 0
            for k in scheduled
            if k > detail["installment"]
        )

    signals = set(detail["signals"])
    declined = 0.0
    if detail["strength"] == "strong":
        assert signals and "mild_decline" not in signals
    else:
        assert detail["strength"] == "weak" and signals <= {"mild_decline"}
    if "decline" in signals:
        sales: dict[int, Decimal] = defaultdict(Decimal)
        count: Counter[int] = Counter()
        for tx in by[Source.TRANSACTIONS][label.borrower_id]:
            if is_sales(tx):
                sales[(instant(tx) - config.start).days] += yuan(tx)
                count[(instant(tx) - config.start).days] += 1
        decline = (date.fromisoformat(detail["decline_start"]) - config.start.date()).days
        assert 21 <= due_day - decline <= 35

        def ratio(per_day: Any) -> float:
            recent = sum(per_day[d] for d in range(due_day - 10, due_day)) / 10
            return float(recent / (sum(per_day[d] for d in range(decline)) / decline))

        # The floor is 15-30 %, but a B2B borrower's one or two inflows a day make ten days
        # noisy: each case declines, the cases together clearly.
        declined = min(ratio(sales), ratio(count))
        assert declined < 1.0
    logins = by[Source.LOGINS][label.borrower_id]
    if "quiet" in signals:
        quiet = datetime.fromisoformat(f"{detail['quiet_from']}T00:00:00+08:00")
        assert 14 <= (due - quiet.date()).days <= 21
        silent = [v for v in logins if quiet <= instant(v) <= grace_end]
        assert {v["action"] for v in silent} <= {"login", "payout_account_change", "logout"}
        # At most the session of a payout change (and the logout of the night before).
        assert sum(v["action"] == "login" for v in silent) <= 1
    if "payout_change" in signals:
        (change,) = [v for v in logins if v["ts"] == detail["payout_change_ts"]]
        assert change["action"] == "payout_account_change"
        assert 2 <= (due - instant(change).date()).days <= 6
    if "late_earlier" in signals:
        earlier = detail["installment"] - 1
        earlier_due = date.fromisoformat(scheduled[earlier]["due_date"])
        grace = datetime.fromisoformat(f"{earlier_due + timedelta(days=3)}T23:59:59+08:00")
        assert paid_by(earlier, grace) < Decimal(scheduled[earlier]["amount_due"])
        assert detail["earlier_payments"]
    return declined


def test_missed_installment_is_unpaid_after_the_grace_period(sim: Simulation, index: Index) -> None:
    labels = labels_of(sim, "missed_installment")
    assert len(labels) == 4
    for label in labels:
        _check_missed(CONFIG, sim, label, index)


def test_delinquency_pre_signals_vary_and_some_cases_are_weak() -> None:
    config = SimulationConfig(borrowers=80, days=70, seed=2, delinquents=24)
    heavy = simulate(config)
    by: Index = {source: defaultdict(list) for source in Source}
    for record in heavy.records:
        source = config.topics.source_of(record["topic"])
        assert source is not None
        by[source][record["key"]].append(record["value"])
    labels = labels_of(heavy, "missed_installment")
    assert len(labels) == 24
    ratios = [_check_missed(config, heavy, label, by) for label in labels]
    declines = [
        r for r, label in zip(ratios, labels, strict=True) if "decline" in label.detail["signals"]
    ]
    assert len(declines) >= 5 and sum(declines) / len(declines) < 0.6
    signals = Counter(s for label in labels for s in label.detail["signals"])
    assert set(signals) >= {"decline", "quiet", "payout_change", "late_earlier"}
    assert any(len(label.detail["signals"]) >= 2 for label in labels)
    assert any(label.detail["strength"] == "weak" for label in labels)
    assert any(float(label.detail["paid"]) > 0 for label in labels)
