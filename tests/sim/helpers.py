"""What the simulator's tests share: the configs they run, and ways to slice the records."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sim import Simulation, SimulationConfig
from topics.labels import CaseLabel
from topics.names import Source

#: Every typology at once; the legacy fields and ``cases`` together.
CONFIG = SimulationConfig(
    borrowers=200,
    days=60,
    seed=11,
    circular_rings=2,
    takeovers=2,
    delinquents=4,
    cases={
        "wash_trading": 2,
        "revenue_inflation": 2,
        "machine_generated": 2,
        "account_takeover_device_replay": 2,
        "credential_stuffing": 1,
        "device_ring": 1,
        "impossible_travel": 2,
        "pass_through": 2,
    },
)
#: Cases per typology: rings of 3, stuffing campaigns and device rings count once.
EXPECTED_CASES = {
    "circular_transfer": 2,
    "wash_trading": 2,
    "revenue_inflation": 2,
    "machine_generated": 2,
    "account_takeover": 2,
    "account_takeover_device_replay": 2,
    "credential_stuffing": 1,
    "device_ring": 1,
    "impossible_travel": 2,
    "missed_installment": 4,
    "pass_through": 2,
}
TINY = SimulationConfig(borrowers=12, days=10, seed=5)
SECTORS = {"ecommerce", "restaurant", "retail", "manufacturing", "logistics"}

Value = dict[str, Any]
Index = dict[Source, dict[str, list[Value]]]


def instant(value: Value | str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value if isinstance(value, str) else value["ts"])


def day_of(value: Value) -> int:
    return (instant(value) - CONFIG.start).days


def values_of(sim: Simulation, source: Source) -> list[Value]:
    topic = CONFIG.topics.input_topic(source)
    return [r["value"] for r in sim.records if r["topic"] == topic]


def labels_of(sim: Simulation, typology: str) -> list[CaseLabel]:
    return [label for label in sim.labels if label.typology == typology]


def labelled_ids(sim: Simulation) -> set[str]:
    return {label.borrower_id for label in sim.labels}


def yuan(value: Value) -> Decimal:
    return Decimal(value["amount"])


def is_sales(tx: Value) -> bool:
    """Customer or client money: not own transfers, loans or transfers between borrowers."""
    return (
        tx["direction"] == "in"
        and tx.get("memo") != "own transfer"
        and not tx["counterparty_id"].startswith(("acct-", "lender-"))
    )


def case_of(label: CaseLabel) -> str:
    """One case: a ring, a stuffing campaign or a device ring counts once."""
    for key in ("ring", "campaign"):
        if key in label.detail:
            return str(label.detail[key])
    return label.borrower_id
