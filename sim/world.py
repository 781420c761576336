"""One run's world: its clock, the records it emits in time order, the ids it hands out."""

from __future__ import annotations

import calendar
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sim.config import SimulationConfig
from topics.labels import CaseLabel
from topics.names import DELINQUENCY_RISK, Source

if TYPE_CHECKING:
    from sim.population import Borrower, Device, Loan
    from sim.typologies.base import Typology

MINUTE = 60
HOUR = 3_600
DAY = 86_400

#: A record waiting for its day to be emitted: instant, topic, sequence number, value.
Pending = tuple[int, str, int, dict[str, Any]]


def money(cents: int) -> str:
    """Cents as the contract writes an amount: a decimal string with two decimals."""
    return f"{cents // 100}.{cents % 100:02d}"


def round_to(cents: float, unit_yuan: int, minimum_units: int = 1) -> int:
    """Round sums the way people set rent, payroll or a drawdown: to whole hundreds or thousands."""
    unit = unit_yuan * 100
    return max(minimum_units, round(cents / unit)) * unit


def shift_months(day: date, months: int, dom: int | None = None) -> date:
    """The same day of month (``dom``, default ``day``'s) ``months`` later, clamped if short."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day if dom is None else dom, last))


def monthly_dues(first: date, count: int, dom: int | None = None) -> list[date]:
    """Monthly due dates on one day of month: the 31st falls on the 28th in February only."""
    return [shift_months(first, k, dom) for k in range(count)]


class World:
    """One run: the clock, the population, the records waiting for their day, the labels.

    Instants are seconds since midnight of day 0 (``config.start``). Records are kept per day
    until the day is emitted, so a plan may add records in any order within the open days.
    """

    def __init__(self, config: SimulationConfig) -> None:
        if config.start.utcoffset() is None:
            raise ValueError("SimulationConfig.start must carry a UTC offset")
        if config.borrowers < 1 or config.days < 1:
            raise ValueError("a simulation needs at least one borrower and one day")
        self.config = config
        self.rng = random.Random(config.seed)
        self.days = config.days
        self.end = config.days * DAY
        self.tz = config.start.tzinfo
        self.origin = config.start.astimezone(UTC)
        self.dates = [config.start.date() + timedelta(days=d) for d in range(config.days)]
        self.first_weekday = config.start.weekday()
        self.topic = {source: config.topics.input_topic(source) for source in Source}
        self.prefix = {
            self.topic[Source.TRANSACTIONS]: "tx",
            self.topic[Source.LOGINS]: "lg",
            self.topic[Source.REPAYMENTS]: "rp",
        }
        self.buckets: dict[int, list[Pending]] = defaultdict(list)
        self.seq = 0
        self.open_from = 0  # events of earlier days have been emitted already
        self.labels: list[tuple[int, str, str, CaseLabel]] = []
        self.device_ids: set[str] = set()
        self.borrowers: list[Borrower] = []
        self.cgnat: dict[str, list[str]] = {}  # city -> the carrier's shared NAT addresses
        self.counters = dict.fromkeys(self.prefix, 0)
        self.report_sector = config.profile.report_sector
        #: (sector, day) -> the shares of inflows and outflows left by the profile's shocks.
        self.shocks: dict[tuple[str, int], tuple[float, float]] = {}
        for shock in config.profile.shocks:
            for d in shock.span:
                inflow, outflow = self.shocks.get((shock.sector, d), (1.0, 1.0))
                self.shocks[shock.sector, d] = (inflow * shock.inflow, outflow * shock.outflow)
        self._iso_fast = isinstance(self.tz, timezone) and config.start.microsecond == 0
        self._iso_suffix = config.start.isoformat()[19:]
        start = config.start
        self._iso_sod = start.hour * HOUR + start.minute * MINUTE + start.second
        self._iso_dates: list[str] = []

    # --- time ---------------------------------------------------------------------------------

    def iso(self, t: int) -> str:
        """The instant ``t`` in ISO-8601 with the platform's offset; by hand, on the hot path."""
        if not self._iso_fast:
            return (self.origin + timedelta(seconds=t)).astimezone(self.tz).isoformat()
        day, rest = divmod(self._iso_sod + t, DAY)
        if day >= len(self._iso_dates) or day < 0:
            if day < 0:
                return (self.origin + timedelta(seconds=t)).astimezone(self.tz).isoformat()
            first = self.config.start.date()
            self._iso_dates.extend(
                (first + timedelta(days=k)).isoformat()
                for k in range(len(self._iso_dates), day + 1)
            )
        hour, rest = divmod(rest, HOUR)
        minute, second = divmod(rest, MINUTE)
        return f"{self._iso_dates[day]}T{hour:02d}:{minute:02d}:{second:02d}{self._iso_suffix}"

    def weekend(self, d: int) -> bool:
        return (self.first_weekday + d) % 7 >= 5

    # --- ids and choices ----------------------------------------------------------------------

    def new_device_id(self, rng: random.Random) -> str:
        """A device id never handed out before, so 'new device' always means new."""
        while (device_id := f"dev-{rng.getrandbits(48):012x}") in self.device_ids:
            pass
        self.device_ids.add(device_id)
        return device_id

    def some(self, count: int, where: Callable[[Borrower], bool] | None = None) -> list[Borrower]:
        """A random sample of up to ``count`` borrowers, among those ``where`` accepts."""
        eligible = [b for b in self.borrowers if where is None or where(b)]
        return self.rng.sample(eligible, min(max(0, count), len(eligible)))

    # --- records ------------------------------------------------------------------------------

    def _add(self, t: int, source: Source, payload: dict[str, Any]) -> None:
        # Benign episodes near the edges (a logout after midnight of the last day) fall outside.
        if 0 <= t < self.end:
            day = t // DAY
            if day < self.open_from:
                raise RuntimeError(f"an event of day {day} came after that day was emitted")
            self.seq += 1
            self.buckets[day].append((t, self.topic[source], self.seq, payload))

    def tx(
        self,
        t: int,
        b: Borrower,
        account: str,
        counterparty: str,
        direction: str,
        cents: int,
        channel: str,
        name: str | None = None,
        memo: str | None = None,
    ) -> None:
        """A line of the borrower's account statement."""
        payload: dict[str, Any] = {
            "borrower_id": b.id,
            "account_id": account,
            "counterparty_id": counterparty,
            "direction": direction,
            "amount": money(cents),
            "currency": "CNY",
            "channel": channel,
            "sector": b.sector.name,
        }
        if not self.report_sector:
            del payload["sector"]  # optional in the contract: not every platform fills it
        if name is not None:
            payload["counterparty_name"] = name
        if memo is not None:
            payload["memo"] = memo
        self._add(t, Source.TRANSACTIONS, payload)

    def transfer(
        self, t: int, payer: Borrower, payee: Borrower, cents: int, memo: str | None
    ) -> None:
        """Money between two borrowers on the platform shows on both statements at once."""
        self.tx(t, payer, payer.account, payee.account, "out", cents, "bank_transfer", memo=memo)
        self.tx(t, payee, payee.account, payer.account, "in", cents, "bank_transfer", memo=memo)

    def login(
        self,
        t: int,
        b: Borrower,
        action: str,
        device: Device,
        ip: str,
        geo: dict[str, Any],
        success: bool = True,
        amount: int | None = None,
    ) -> None:
        """A login or an action in the app, on one device from one address."""
        payload: dict[str, Any] = {
            "borrower_id": b.id,
            "user_id": f"u-{b.number}",
            "action": action,
            "device_id": device.id,
            "ip": ip,
            "success": success,
            "geo": dict(geo),
            "user_agent": device.user_agent,
        }
        if amount is not None:
            payload["amount"] = money(amount)
        self._add(t, Source.LOGINS, payload)

    def repayment(self, t: int, b: Borrower, loan: Loan, installment: int, **fields: Any) -> None:
        """A line of a loan's schedule or a payment of one installment."""
        payload: dict[str, Any] = {
            "borrower_id": b.id,
            "loan_id": loan.loan_id,
            "installment": installment,
            **fields,
            "currency": "CNY",
        }
        self._add(t, Source.REPAYMENTS, payload)

    def label(
        self, t: int, b: Borrower, typology: Typology, end: int, detail: dict[str, Any]
    ) -> None:
        """The ground truth of one case on one borrower, from ``t`` to ``end``, in the
        contract's labels form (``topics.labels``); what was injected stays in ``detail``."""
        start = self.iso(t)
        label = CaseLabel(
            case_id=f"{typology.name}:{b.id}:{start}",
            borrower_id=b.id,
            category=typology.category,
            typology=typology.name,
            start=datetime.fromisoformat(start),
            end=datetime.fromisoformat(self.iso(end)),
            entities=case_entities(b.id, detail),
            **_installment_of(typology.category, detail),
            detail=detail,
        )
        self.labels.append((t, typology.name, b.id, label))

    def sorted_labels(self) -> list[CaseLabel]:
        return [item[3] for item in sorted(self.labels, key=lambda item: item[:3])]

    def flush(self, day: int) -> Iterator[dict[str, Any]]:
        """Sort one day by instant, then number events per topic in that order: ids follow time."""
        self.open_from = day + 1
        events = self.buckets.pop(day, [])
        events.sort()  # (t, topic, seq) is unique, so payloads are never compared
        counters = self.counters
        iso = self.iso
        prefix = self.prefix
        for t, topic, _, payload in events:
            counters[topic] += 1
            value = {"event_id": f"{prefix[topic]}-{counters[topic]:09d}", "ts": iso(t), **payload}
            yield {"topic": topic, "key": payload["borrower_id"], "value": value}


#: What a case's ``detail`` names besides its borrower: the other borrowers, accounts,
#: counterparties, devices and IPs of the case, which an alert may name instead.
ENTITY_LISTS = ("members", "accounts", "counterparties")
ENTITY_FIELDS = ("device_id", "ip", "counterparty")


def case_entities(borrower_id: str, detail: dict[str, Any]) -> tuple[str, ...]:
    """The ids a label's ``entities`` lists, in a stable order, without its own borrower."""
    named: list[str] = []
    for key in ENTITY_LISTS:
        named += [str(v) for v in detail.get(key) or () if isinstance(v, str)]
    named += [str(detail[key]) for key in ENTITY_FIELDS if isinstance(detail.get(key), str)]
    return tuple(dict.fromkeys(v for v in named if v != borrower_id))


def _installment_of(category: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A delinquency case's installment, as the labels contract names it; nothing otherwise."""
    if category != DELINQUENCY_RISK:
        return {}
    return {
        "loan_id": detail["loan_id"],
        "installment": detail["installment"],
        "due_date": date.fromisoformat(detail["due_date"]),
    }
