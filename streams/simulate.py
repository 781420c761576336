"""Deterministic synthetic lending traffic: a hard benign population plus labelled cases."""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson

from topics.names import Source, TopicNames

__all__ = [
    "SALE_DAY",
    "SLUMP_DAYS",
    "Label",
    "Simulation",
    "SimulationConfig",
    "iter_jsonl",
    "simulate",
    "write_jsonl",
]

MINUTE = 60
HOUR = 3_600
DAY = 86_400

#: Day of the e-commerce sale: every e-commerce borrower's inflows triple (a sector-wide boom).
SALE_DAY = 20
SALE_BOOST = 3.0
#: Days of the restaurant slump: every restaurant's inflows drop by 40 % (a sector-wide shock).
SLUMP_DAYS = range(35, 46)
SLUMP_INFLOW = 0.6
SLUMP_OUTFLOW = 0.7

LOAN_SHARE = 0.6
TYPO_RATE = 0.03
LOGOUT_RATE = 0.6
OWN_TRANSFER_RATE = 0.15
PARTNER_PAYMENT_RATE = 0.25
SPLIT_PAYMENT_RATE = 0.05
LENDER_REPAY = ("lender-repay", "Loan repayment")
LENDER_DISBURSE = ("lender-disburse", "Loan disbursement")


def _cum(weights: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(accumulate(weights))


def _hours(weights: str) -> tuple[float, ...]:
    """Cumulative weights of the 24 hours of the day (platform time), written as one line."""
    return _cum(tuple(float(w) for w in weights.split()))


_HOURS = range(24)
_LOGIN_CUM = _hours(".2 .1 .05 .05 .05 .1 .5 1.5 3 4 3 2.5 2 2 2.5 2.5 2 2 2 2.5 3 3 2 1")
_OFFICE_CUM = _hours("0 0 0 0 0 0 0 0 2 4 4 3 1 2 4 4 3 1 0 0 0 0 0 0")
# The sale opens at midnight: a burst in the first hours, then the evening as usual.
_SALE_CUM = _hours("9 6 3 1 .5 .3 .4 .8 1.5 2.5 3 3 3 3 3 3 3 3.5 4 5 6 7 6 4")
_SESSION_COUNTS = (1, 2, 3, 4)
_SESSION_CUM = _cum((35, 35, 20, 10))


@dataclass(frozen=True)
class _Sector:
    """How one sector earns and spends: rhythm, ticket sizes, counterparties."""

    name: str
    share: float
    inflows_per_day: float  # weekday mean before the borrower's own scale
    weekend: float  # inflow multiplier on Saturdays and Sundays
    ticket: float  # median inflow, yuan
    sigma: float  # spread of the log ticket
    channels: tuple[str, ...]
    channel_cum: tuple[float, ...]
    hours_cum: tuple[float, ...]
    suppliers_per_day: float
    supplier_weekend: float
    expenses_per_day: float  # small payments to a shared pool (ads, utilities, fuel)
    expense_ticket: float
    expense_prefix: str
    expense_channel: str
    refund_rate: float  # chance that a customer's wallet or POS payment is refunded
    regular_share: float  # share of inflows from the borrower's repeat customers or clients
    consumer: bool


_SECTORS = (
    _Sector(
        name="ecommerce",
        share=0.25,
        inflows_per_day=12,
        weekend=1.4,
        ticket=180,
        sigma=0.8,
        channels=("ecommerce", "wallet"),
        channel_cum=_cum((0.6, 0.4)),
        hours_cum=_hours("1.5 1 .6 .3 .2 .2 .4 .8 1.5 2.5 3 3 3 3 3 3 3 3.5 4 5 6 6.5 5 3"),
        suppliers_per_day=1.2,
        supplier_weekend=0.6,
        expenses_per_day=0.8,
        expense_ticket=300,
        expense_prefix="ads",
        expense_channel="wallet",
        refund_rate=0.03,
        regular_share=0.2,
        consumer=True,
    ),
    _Sector(
        name="restaurant",
        share=0.25,
        inflows_per_day=22,
        weekend=1.2,
        ticket=65,
        sigma=0.6,
        channels=("pos", "wallet"),
        channel_cum=_cum((0.35, 0.65)),
        hours_cum=_hours("0 0 0 0 0 0 .2 .5 1 1 2 6 9 6 2 1 1.5 5 8 7 3 1.5 .8 .3"),
        suppliers_per_day=1.6,
        supplier_weekend=1.0,
        expenses_per_day=0.6,
        expense_ticket=250,
        expense_prefix="util",
        expense_channel="bank_transfer",
        refund_rate=0.005,
        regular_share=0.35,
        consumer=True,
    ),
    _Sector(
        name="retail",
        share=0.20,
        inflows_per_day=14,
        weekend=1.3,
        ticket=90,
        sigma=0.9,
        channels=("pos", "wallet"),
        channel_cum=_cum((0.45, 0.55)),
        hours_cum=_hours("0 0 0 0 0 0 0 .3 1 3 4 5 5 4 4 4 4.5 5.5 6 5 4 2 .5 0"),
        suppliers_per_day=1.0,
        supplier_weekend=0.5,
        expenses_per_day=0.5,
        expense_ticket=200,
        expense_prefix="util",
        expense_channel="bank_transfer",
        refund_rate=0.015,
        regular_share=0.3,
        consumer=True,
    ),
    _Sector(
        name="manufacturing",
        share=0.15,
        inflows_per_day=2.5,
        weekend=0.1,
        ticket=25_000,
        sigma=0.7,
        channels=("bank_transfer",),
        channel_cum=(1.0,),
        hours_cum=_hours("0 0 0 0 0 0 0 .2 1 3 4 4 2 2 4 4 3 2 .5 .1 0 0 0 0"),
        suppliers_per_day=2.0,
        supplier_weekend=0.1,
        expenses_per_day=0.5,
        expense_ticket=1_500,
        expense_prefix="util",
        expense_channel="bank_transfer",
        refund_rate=0.0,
        regular_share=0.9,
        consumer=False,
    ),
    _Sector(
        name="logistics",
        share=0.15,
        inflows_per_day=4.5,
        weekend=0.3,
        ticket=3_500,
        sigma=0.7,
        channels=("bank_transfer", "wallet"),
        channel_cum=_cum((0.7, 0.3)),
        hours_cum=_hours("0 0 0 0 0 0 .5 2 3 4 4 3 2 3 4 4 3 2 1 .5 .2 0 0 0"),
        suppliers_per_day=1.0,
        supplier_weekend=0.3,
        expenses_per_day=3.5,
        expense_ticket=450,
        expense_prefix="fuel",
        expense_channel="wallet",
        refund_rate=0.0,
        regular_share=0.85,
        consumer=False,
    ),
)

_PLATFORMS = (
    ("plat-tmall-settle", "Tmall settlement"),
    ("plat-jd-settle", "JD settlement"),
    ("plat-pdd-settle", "Pinduoduo settlement"),
    ("plat-douyin-settle", "Douyin settlement"),
)


@dataclass(frozen=True)
class _City:
    name: str
    lat: float
    lon: float
    broadband: str  # first octets of home broadband addresses
    mobile: str  # first octets of the mobile carrier's addresses


_CITIES = (
    _City("Shanghai", 31.2304, 121.4737, "101.80", "117.136"),
    _City("Beijing", 39.9042, 116.4074, "123.112", "111.196"),
    _City("Shenzhen", 22.5431, 114.0579, "113.88", "120.229"),
    _City("Guangzhou", 23.1291, 113.2644, "14.215", "183.232"),
    _City("Hangzhou", 30.2741, 120.1551, "115.236", "39.173"),
    _City("Chengdu", 30.5728, 104.0668, "171.88", "223.87"),
    _City("Wuhan", 30.5928, 114.3055, "59.172", "111.47"),
    _City("Xi'an", 34.3416, 108.9398, "113.140", "117.32"),
    _City("Nanjing", 32.0603, 118.7969, "180.110", "112.2"),
    _City("Suzhou", 31.2990, 120.5853, "58.208", "112.80"),
    _City("Chongqing", 29.4316, 106.9123, "222.178", "183.230"),
    _City("Xiamen", 24.4798, 118.0894, "117.28", "27.154"),
)

_PHONE_AGENTS = (
    "LendApp/5.3.0 (iPhone; iOS 17.4)",
    "LendApp/5.3.0 (iPhone; iOS 18.1)",
    "LendApp/5.2.4 (Android 14; Xiaomi 14)",
    "LendApp/5.2.4 (Android 13; HUAWEI Mate 50)",
    "LendApp/5.3.0 (Android 14; OPPO Find X7)",
    "LendApp/5.1.9 (Android 12; vivo X80)",
)
_DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
)
_ATTACKER_AGENTS = (
    "LendApp/5.0.2 (Android 10; SM-G960F)",
    "LendApp/5.3.0 (Android 11; Redmi Note 9)",
    "okhttp/4.9.3",
)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; ``None`` case counts scale with the population."""

    borrowers: int = 200
    days: int = 60
    seed: int = 7
    #: Midnight of day 0; every timestamp carries this offset (the platform's time zone).
    start: datetime = datetime(2026, 1, 5, tzinfo=timezone(timedelta(hours=8)))
    # None -> the default below, or 0 if the period is too short to hold such a case
    # (rings need 7 days, takeovers 8, delinquents 35); an explicit impossible count is an error.
    circular_rings: int | None = None  # None -> max(1, borrowers // 60)
    takeovers: int | None = None  # None -> max(1, borrowers // 50)
    delinquents: int | None = None  # None -> max(1, borrowers // 25)
    topics: TopicNames = field(default_factory=TopicNames)


@dataclass(frozen=True)
class Label:
    """Ground truth of one injected case for one borrower, to score detectors against."""

    borrower_id: str
    category: str  # "falsified_flow" | "abnormal_behaviour" | "delinquency_risk"
    typology: str  # "circular_transfer" | "account_takeover" | "missed_installment"
    start: str  # ISO-8601 with offset: when the injected case starts
    end: str  # when it ends (delinquency: due date + 3 days grace, end of that day)
    detail: dict[str, Any]


@dataclass(frozen=True)
class Simulation:
    """The events to replay or produce, and the ground truth to score the alerts against."""

    records: list[dict[str, Any]]  # {"topic", "key", "value"}, sorted by (ts, topic, event_id)
    labels: list[Label]


@dataclass(frozen=True)
class _Device:
    id: str
    user_agent: str
    phone: bool


@dataclass
class _Loan:
    loan_id: str
    booked: int  # seconds since start: when the schedule was published
    dues: list[date]
    amount_due: int  # cents
    missed_from: int | None = None  # first installment the borrower fails to pay in full
    partial: int = 0  # cents paid on that installment


@dataclass
class _Borrower:
    """A borrower's fixed traits and the benign or injected episodes planned for it."""

    id: str
    sector: _Sector
    rng: random.Random
    city: _City
    home_ip: str
    devices: list[_Device]
    count_scale: float
    log_ticket: float
    regulars: list[str]
    suppliers: list[str]
    platforms: list[tuple[str, str]]
    monthly_inflow: int  # cents, expected, before any shock
    supplier_ticket: float  # yuan
    landlord: str
    rent: int
    rent_dom: int
    payroll: int
    payroll_dom: int
    seen_devices: set[str] = field(default_factory=set)  # devices it has logged in from
    loans: list[_Loan] = field(default_factory=list)
    late_payer: bool = False
    decline: tuple[int, int, float] | None = None  # start day, due day, floor share of normal
    partner: _Borrower | None = None  # another borrower it buys from (benign link)
    new_phone: _Device | None = None
    phone_change_day: int | None = None
    forgot_password_day: int | None = None
    travel: tuple[int, int, _City] | None = None  # first day, day after, city
    payout_change_day: int | None = None
    drawdown_day: int | None = None
    big_contract_day: int | None = None

    @property
    def number(self) -> str:
        return self.id.removeprefix("b-")

    @property
    def account(self) -> str:
        return f"acct-{self.number}-1"

    @property
    def second_account(self) -> str:
        return f"acct-{self.number}-2"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _round_to(cents: float, unit_yuan: int, minimum_units: int = 1) -> int:
    """Round sums the way people set rent, payroll or a drawdown: to whole hundreds or thousands."""
    unit = unit_yuan * 100
    return max(minimum_units, round(cents / unit)) * unit


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _some(rng: random.Random, items: list[_Borrower], count: int) -> list[_Borrower]:
    return rng.sample(items, min(count, len(items)))


def _second(rng: random.Random, hours_cum: tuple[float, ...]) -> int:
    return rng.choices(_HOURS, cum_weights=hours_cum)[0] * HOUR + rng.randrange(HOUR)


def _shift_months(day: date, months: int, dom: int | None = None) -> date:
    """The same day of month (``dom``, default ``day``'s) ``months`` later, clamped if short."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day if dom is None else dom, last))


def _monthly_dues(first: date, count: int, dom: int | None = None) -> list[date]:
    """Monthly due dates on one day of month: the 31st falls on the 28th in February only."""
    return [_shift_months(first, k, dom) for k in range(count)]


def _resolve(explicit: int | None, default: int, feasible: bool, name: str, need: str) -> int:
    """An explicit count must be possible; a default one quietly becomes 0 in a too-short period."""
    if explicit is None:
        return default if feasible else 0
    if explicit < 0:
        raise ValueError(f"{name} must not be negative, got {explicit}")
    if explicit and not feasible:
        raise ValueError(f"{name}={explicit} needs {need}")
    return explicit


class _World:
    """One run: the population, the event buffer and the labels."""

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
        self.events: list[tuple[int, str, int, dict[str, Any]]] = []
        self.labels: list[tuple[int, str, str, Label]] = []
        self.device_ids: set[str] = set()
        self.borrowers: list[_Borrower] = []

    # --- output -------------------------------------------------------------------------------

    def iso(self, t: int) -> str:
        return (self.origin + timedelta(seconds=t)).astimezone(self.tz).isoformat()

    def _add(self, t: int, source: Source, payload: dict[str, Any]) -> None:
        # Benign episodes near the edges (a logout after midnight of the last day) fall outside.
        if 0 <= t < self.end:
            self.events.append((t, self.topic[source], len(self.events), payload))

    def tx(
        self,
        t: int,
        b: _Borrower,
        account: str,
        counterparty: str,
        direction: str,
        cents: int,
        channel: str,
        name: str | None = None,
        memo: str | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "borrower_id": b.id,
            "account_id": account,
            "counterparty_id": counterparty,
            "direction": direction,
            "amount": _money(cents),
            "currency": "CNY",
            "channel": channel,
        }
        if name is not None:
            payload["counterparty_name"] = name
        if memo is not None:
            payload["memo"] = memo
        self._add(t, Source.TRANSACTIONS, payload)

    def transfer(self, t: int, payer: _Borrower, payee: _Borrower, cents: int, memo: str) -> None:
        """Money between two borrowers on the platform shows on both statements at once."""
        self.tx(t, payer, payer.account, payee.account, "out", cents, "bank_transfer", memo=memo)
        self.tx(t, payee, payee.account, payer.account, "in", cents, "bank_transfer", memo=memo)

    def login(
        self,
        t: int,
        b: _Borrower,
        action: str,
        device: _Device,
        ip: str,
        geo: dict[str, Any],
        success: bool = True,
        amount: int | None = None,
    ) -> None:
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
            payload["amount"] = _money(amount)
        self._add(t, Source.LOGINS, payload)

    def repayment(self, t: int, b: _Borrower, loan: _Loan, installment: int, **fields: Any) -> None:
        payload: dict[str, Any] = {
            "borrower_id": b.id,
            "loan_id": loan.loan_id,
            "installment": installment,
            **fields,
            "currency": "CNY",
        }
        self._add(t, Source.REPAYMENTS, payload)

    def label(
        self, t: int, b: _Borrower, category: str, typology: str, end: int, detail: dict[str, Any]
    ) -> None:
        label = Label(b.id, category, typology, self.iso(t), self.iso(end), detail)
        self.labels.append((t, typology, b.id, label))

    def finish(self) -> Simulation:
        """Sort by instant, then number events per topic in that order: ids follow time."""
        self.events.sort(key=lambda event: event[:3])
        prefix = {
            self.topic[Source.TRANSACTIONS]: "tx",
            self.topic[Source.LOGINS]: "lg",
            self.topic[Source.REPAYMENTS]: "rp",
        }
        counters = dict.fromkeys(prefix, 0)
        records = []
        for t, topic, _, payload in self.events:
            counters[topic] += 1
            value = {
                "event_id": f"{prefix[topic]}-{counters[topic]:09d}",
                "ts": self.iso(t),
                **payload,
            }
            records.append({"topic": topic, "key": payload["borrower_id"], "value": value})
        self.labels.sort(key=lambda item: item[:3])
        return Simulation(records, [item[3] for item in self.labels])

    # --- population ---------------------------------------------------------------------------

    def device(self, rng: random.Random, phone: bool) -> _Device:
        """A device id never handed out before, so 'new device' always means new."""
        while (device_id := f"dev-{rng.getrandbits(48):012x}") in self.device_ids:
            pass
        self.device_ids.add(device_id)
        agents = _PHONE_AGENTS if phone else _DESKTOP_AGENTS
        return _Device(device_id, rng.choice(agents), phone)

    def sectors(self) -> list[_Sector]:
        """Sector quotas by largest remainder, shuffled: every sector shows up in small runs too."""
        n = self.config.borrowers
        exact = [s.share * n for s in _SECTORS]
        counts = [int(x) for x in exact]
        by_remainder = sorted(range(len(_SECTORS)), key=lambda i: counts[i] - exact[i])
        for i in by_remainder[: n - sum(counts)]:
            counts[i] += 1
        sectors = [s for s, count in zip(_SECTORS, counts, strict=True) for _ in range(count)]
        self.rng.shuffle(sectors)
        return sectors

    def borrower(self, index: int, sector: _Sector) -> _Borrower:
        rng = random.Random(self.rng.getrandbits(64))
        city = rng.choice(_CITIES)
        devices = [self.device(rng, phone=True)]
        if rng.random() < 0.5:
            devices.append(self.device(rng, phone=False))
        count_scale = min(1.6, max(0.5, rng.lognormvariate(0, 0.3)))
        ticket_scale = rng.lognormvariate(0, 0.35)
        if sector.consumer:
            regulars = [f"cust-{rng.randrange(10**8):08d}" for _ in range(rng.randint(20, 80))]
        else:
            regulars = [f"corp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(3, 8))]
        week = (5 + 2 * sector.weekend) / 7
        mean_ticket = sector.ticket * ticket_scale * math.exp(sector.sigma**2 / 2)
        monthly = 30 * sector.inflows_per_day * week * count_scale * mean_ticket * 100
        supplier_week = (5 + 2 * sector.supplier_weekend) / 7
        supplier_payments = 30 * sector.suppliers_per_day * supplier_week
        platforms = []
        if sector.name == "ecommerce":
            platforms = rng.sample(_PLATFORMS, rng.randint(1, 3))
        return _Borrower(
            id=f"b-{index:05d}",
            sector=sector,
            rng=rng,
            city=city,
            home_ip=f"{city.broadband}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            devices=devices,
            count_scale=count_scale,
            log_ticket=math.log(sector.ticket * ticket_scale),
            regulars=regulars,
            suppliers=[f"supp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(2, 5))],
            platforms=platforms,
            monthly_inflow=round(monthly),
            supplier_ticket=0.55 * monthly / 100 / supplier_payments,
            landlord=f"land-{rng.randrange(10**6):06d}",
            rent=_round_to(monthly * rng.uniform(0.05, 0.10), 1000),
            rent_dom=rng.randint(1, 5),
            payroll=_round_to(monthly * rng.uniform(0.12, 0.25), 1000, minimum_units=2),
            payroll_dom=rng.choice((10, 15, 25)),
        )

    def loan(self, b: _Borrower, booked: int, dues: list[date]) -> _Loan:
        """A loan whose installment is 5–15 % of the borrower's normal monthly inflow."""
        amount_due = round(b.monthly_inflow * b.rng.uniform(0.05, 0.15))
        return _Loan(f"ln-{b.number}-{len(b.loans) + 1}", booked, dues, amount_due)

    def plan(
        self, rings: int, takeovers: int, delinquents: int
    ) -> tuple[list[list[_Borrower]], list[_Borrower]]:
        """Draw every role up front; injected roles are disjoint so each label is unambiguous."""
        rng = self.rng
        self.borrowers = [self.borrower(i, s) for i, s in enumerate(self.sectors(), start=1)]
        order = rng.sample(self.borrowers, len(self.borrowers))
        members = order[: 3 * rings]
        delinquent = order[3 * rings : 3 * rings + delinquents]
        victims = order[3 * rings + delinquents : 3 * rings + delinquents + takeovers]
        others = order[3 * rings + delinquents + takeovers :]

        for b in delinquent:
            self.plan_delinquency(b)
        share = (LOAN_SHARE * len(order) - len(delinquent)) / max(1, len(others))
        for b in members + others:
            if rng.random() < share:
                first_due = self.dates[0] + timedelta(days=rng.randint(10, 40))
                dues = _monthly_dues(first_due, rng.choice((6, 12)))
                b.loans.append(self.loan(b, rng.randint(MINUTE, 59 * MINUTE), dues))
        payers = [b for b in members + others if b.loans]
        for b in _some(rng, payers, max(1, round(0.1 * len(payers)))):
            b.late_payer = True

        self.plan_benign(members + delinquent + others)
        return [members[i : i + 3] for i in range(0, 3 * rings, 3)], victims

    def plan_benign(self, eligible: list[_Borrower]) -> None:
        """Benign look-alikes of the injected cases; takeover victims keep a plain history."""
        rng, n, days = self.rng, len(self.borrowers), self.days
        pool = rng.sample(eligible, len(eligible))

        def take(count: int) -> list[_Borrower]:
            taken = pool[:count]
            del pool[:count]
            return taken

        # Both start after day 0, so the device in question has a history to be known by.
        for b in take(max(1, round(0.05 * n))):
            b.new_phone = self.device(b.rng, phone=True)
            b.phone_change_day = 1 + rng.randrange(max(1, days - 1))
        for b in take(max(1, round(0.02 * n))):
            b.forgot_password_day = 1 + rng.randrange(max(1, days - 1))
        for b in take(max(1, round(0.05 * n))):
            first = rng.randrange(days)
            city = rng.choice([c for c in _CITIES if c != b.city])
            b.travel = (first, first + rng.randint(2, 4), city)
        for b in _some(rng, eligible, round(0.03 * n)):
            b.payout_change_day = rng.randrange(days)
        for b in _some(rng, [b for b in eligible if not b.loans], round(0.08 * n)):
            b.drawdown_day = rng.randrange(days)
        makers = [b for b in eligible if b.sector.name == "manufacturing"]
        for b in _some(rng, makers, max(1, len(makers) // 10)):
            b.big_contract_day = rng.randrange(days)
        b2b = [b for b in self.borrowers if not b.sector.consumer]
        for b in _some(rng, eligible, round(0.1 * n)):
            partners = [p for p in b2b if p is not b]
            if partners:
                b.partner = rng.choice(partners)

    # --- benign traffic -----------------------------------------------------------------------

    def weekend(self, d: int) -> bool:
        return (self.first_weekday + d) % 7 >= 5

    def decline(self, b: _Borrower, d: int) -> float:
        if b.decline is None or d < b.decline[0]:
            return 1.0
        start, due, floor = b.decline
        return 1.0 - (1.0 - floor) * min(1.0, (d - start) / (due - start))

    def inflows(self, b: _Borrower, d: int) -> None:
        rng, s = b.rng, b.sector
        lam = s.inflows_per_day * b.count_scale * (s.weekend if self.weekend(d) else 1.0)
        sale = s.name == "ecommerce" and d == SALE_DAY
        if sale:
            lam *= SALE_BOOST
        if s.name == "restaurant" and d in SLUMP_DAYS:
            lam *= SLUMP_INFLOW
        # A failing business sees fewer and smaller payments: split the decline between the two,
        # so that even a borrower with one or two large inflows a day shows it.
        shrink = math.sqrt(self.decline(b, d))
        lam *= shrink
        # Returns follow a sale: refunds double in the week after it.
        refund_rate = s.refund_rate * (2 if s.name == "ecommerce" and 0 < d - SALE_DAY <= 7 else 1)
        for hour in rng.choices(
            _HOURS, cum_weights=_SALE_CUM if sale else s.hours_cum, k=_poisson(rng, lam)
        ):
            t = d * DAY + hour * HOUR + rng.randrange(HOUR)
            channel = rng.choices(s.channels, cum_weights=s.channel_cum)[0]
            x = rng.lognormvariate(b.log_ticket, s.sigma) * shrink
            cents = max(1, round(x)) * 100 if rng.random() < 0.4 else max(100, round(x * 100))
            name = None
            if channel == "ecommerce":
                counterparty, name = rng.choice(b.platforms)
            elif rng.random() < s.regular_share:
                counterparty = rng.choice(b.regulars)
            elif s.consumer:
                counterparty = f"cust-{rng.randrange(10**8):08d}"
            else:
                counterparty = f"corp-{rng.randrange(10**6):06d}"
            self.tx(t, b, b.account, counterparty, "in", cents, channel, name=name)
            if channel != "ecommerce" and rng.random() < refund_rate:
                back = t + rng.randint(30 * MINUTE, 20 * HOUR)
                self.tx(back, b, b.account, counterparty, "out", cents, channel, memo="refund")
        if d == b.big_contract_day:
            t = d * DAY + _second(rng, _OFFICE_CUM)
            cents = _round_to(math.exp(b.log_ticket) * 100 * rng.uniform(15, 40), 1000)
            self.tx(
                t,
                b,
                b.account,
                f"corp-{rng.randrange(10**6):06d}",
                "in",
                cents,
                "bank_transfer",
                memo="contract prepayment",
            )

    def outflows(self, b: _Borrower, d: int) -> None:
        rng, s = b.rng, b.sector
        weekend = self.weekend(d)
        scale = (s.supplier_weekend if weekend else 1.0) * (1 + self.decline(b, d)) / 2
        if s.name == "restaurant" and d in SLUMP_DAYS:
            scale *= SLUMP_OUTFLOW
        for _ in range(_poisson(rng, s.suppliers_per_day * scale)):
            cents = b.supplier_ticket * rng.lognormvariate(0, 0.5) * 100
            cents = _round_to(cents, 100) if rng.random() < 0.25 else max(100, round(cents))
            self.tx(
                d * DAY + _second(rng, _OFFICE_CUM),
                b,
                b.account,
                rng.choice(b.suppliers),
                "out",
                cents,
                "bank_transfer",
            )
        for _ in range(_poisson(rng, s.expenses_per_day * (0.5 if weekend else 1.0))):
            cents = max(100, round(rng.lognormvariate(math.log(s.expense_ticket), 0.6) * 100))
            self.tx(
                d * DAY + _second(rng, s.hours_cum),
                b,
                b.account,
                f"{s.expense_prefix}-{rng.randrange(500):04d}",
                "out",
                cents,
                s.expense_channel,
            )
        if b.partner is not None and not weekend and rng.random() < PARTNER_PAYMENT_RATE:
            cents = max(100, round(b.supplier_ticket * rng.lognormvariate(0, 0.5) * 100))
            self.transfer(d * DAY + _second(rng, _OFFICE_CUM), b, b.partner, cents, "purchase")
        if rng.random() < OWN_TRANSFER_RATE:
            cents = b.monthly_inflow / 30 * rng.uniform(1, 5)
            cents = _round_to(cents, 1000) if rng.random() < 0.6 else max(100, round(cents))
            src, dst = (b.account, b.second_account)
            if rng.random() < 0.25:
                src, dst = dst, src
            t = d * DAY + _second(rng, _OFFICE_CUM)
            self.tx(t, b, src, dst, "out", cents, "bank_transfer", memo="own transfer")
            self.tx(t, b, dst, src, "in", cents, "bank_transfer", memo="own transfer")
        dom = self.dates[d].day
        if dom == b.rent_dom:
            self.tx(
                d * DAY + rng.randint(9 * HOUR, 11 * HOUR),
                b,
                b.account,
                b.landlord,
                "out",
                b.rent,
                "bank_transfer",
                memo="rent",
            )
        if dom == b.payroll_dom:
            self.tx(
                d * DAY + rng.randint(9 * HOUR, 12 * HOUR),
                b,
                b.account,
                f"payroll-{b.number}",
                "out",
                b.payroll,
                "bank_transfer",
                name="Payroll agent",
                memo="payroll",
            )

    def geo(self, rng: random.Random, city: _City) -> dict[str, Any]:
        return {
            "lat": round(city.lat + rng.gauss(0, 0.03), 4),
            "lon": round(city.lon + rng.gauss(0, 0.03), 4),
            "city": city.name,
        }

    def sessions(self, b: _Borrower, d: int) -> None:
        rng = b.rng
        travelling = b.travel is not None and b.travel[0] <= d < b.travel[1]
        city = b.travel[2] if b.travel is not None and travelling else b.city
        count = rng.choices(_SESSION_COUNTS, cum_weights=_SESSION_CUM)[0]
        for i, t in enumerate(sorted(d * DAY + _second(rng, _LOGIN_CUM) for _ in range(count))):
            first = i == 0
            changing_phone = False
            if first and d == b.phone_change_day and b.new_phone is not None:
                b.devices[0], changing_phone = b.new_phone, True
            if travelling or len(b.devices) == 1 or rng.random() < 0.75:
                device = b.devices[0]
            else:
                device = b.devices[1]
            forgetting = first and d == b.forgot_password_day
            if forgetting and device.id not in b.seen_devices:
                device = next((dv for dv in b.devices if dv.id in b.seen_devices), device)
            if device.phone and (travelling or rng.random() < 0.5):
                ip = f"{city.mobile}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            else:
                ip = b.home_ip
            geo = self.geo(rng, city)
            if forgetting:
                t = self.forgot_password(b, t, device, ip, geo)
            elif not changing_phone and rng.random() < TYPO_RATE:
                failed = t
                for _ in range(rng.randint(1, 3)):
                    failed -= rng.randint(8, 40)
                    self.login(failed, b, "login", device, ip, geo, success=False)
            self.login(t, b, "login", device, ip, geo)
            b.seen_devices.add(device.id)
            last = t
            if first and d == b.payout_change_day:
                last += rng.randint(2 * MINUTE, 20 * MINUTE)
                self.login(last, b, "payout_account_change", device, ip, geo)
            if first and d == b.drawdown_day:
                last += rng.randint(3 * MINUTE, 30 * MINUTE)
                self.benign_drawdown(b, last, device, ip, geo)
            if rng.random() < LOGOUT_RATE:
                last += rng.randint(3 * MINUTE, 90 * MINUTE)
                self.login(last, b, "logout", device, ip, geo)

    def forgot_password(
        self, b: _Borrower, t: int, device: _Device, ip: str, geo: dict[str, Any]
    ) -> int:
        """5–7 failures, a reset and a success, all on a device the borrower already uses."""
        rng = b.rng
        for _ in range(rng.randint(5, 7)):
            self.login(t, b, "login", device, ip, geo, success=False)
            t += rng.randint(15, 60)
        t += rng.randint(MINUTE, 4 * MINUTE)
        self.login(t, b, "password_reset", device, ip, geo)
        return t + rng.randint(30, 180)

    def benign_drawdown(
        self, b: _Borrower, t: int, device: _Device, ip: str, geo: dict[str, Any]
    ) -> None:
        """A borrower's own drawdown: funds land on its account and a new schedule is booked."""
        rng = b.rng
        cents = _round_to(b.monthly_inflow * rng.uniform(0.3, 1.5), 1000, minimum_units=10)
        self.login(t, b, "drawdown", device, ip, geo, amount=cents)
        first_due = _shift_months(self.dates[t // DAY], 1)
        loan = self.loan(b, t + MINUTE, _monthly_dues(first_due, rng.choice((6, 12))))
        b.loans.append(loan)
        self.tx(
            t + 2 * MINUTE,
            b,
            b.account,
            LENDER_DISBURSE[0],
            "in",
            cents,
            "bank_transfer",
            name=LENDER_DISBURSE[1],
            memo=loan.loan_id,
        )

    def repayments(self, b: _Borrower, loan: _Loan) -> None:
        rng = b.rng
        start = self.dates[0]
        for k, due in enumerate(loan.dues, start=1):
            self.repayment(
                loan.booked,
                b,
                loan,
                k,
                kind="scheduled",
                due_date=due.isoformat(),
                amount_due=_money(loan.amount_due),
            )
        for k, due in enumerate(loan.dues, start=1):
            due_day = (due - start).days
            if loan.missed_from is not None and k >= loan.missed_from:
                if k == loan.missed_from and loan.partial:
                    self.pay(b, loan, k, due_day - rng.randint(0, 2), loan.partial)
                continue
            if b.late_payer:
                self.pay(b, loan, k, due_day + rng.choice((1, 2)), loan.amount_due)
                continue
            pay_day = due_day - rng.choices((0, 1, 2, 3), cum_weights=(35, 65, 85, 100))[0]
            if rng.random() < SPLIT_PAYMENT_RATE:
                part = round(loan.amount_due * rng.uniform(0.4, 0.7))
                self.pay(b, loan, k, pay_day - 1, part)
                self.pay(b, loan, k, pay_day, loan.amount_due - part)
            else:
                self.pay(b, loan, k, pay_day, loan.amount_due)

    def pay(self, b: _Borrower, loan: _Loan, installment: int, day: int, cents: int) -> None:
        """A payment shows in the repayment stream and as a debit on the borrower's account."""
        t = day * DAY + b.rng.randint(8 * HOUR, 22 * HOUR)
        if t <= loan.booked:
            return
        self.repayment(t, b, loan, installment, kind="payment", amount=_money(cents))
        self.tx(
            t,
            b,
            b.account,
            LENDER_REPAY[0],
            "out",
            cents,
            "bank_transfer",
            name=LENDER_REPAY[1],
            memo=f"{loan.loan_id} #{installment}",
        )

    def benign(self, b: _Borrower) -> None:
        for d in range(self.days):
            self.inflows(b, d)
            self.outflows(b, d)
            self.sessions(b, d)
        for loan in b.loans:
            self.repayments(b, loan)

    # --- injected cases -----------------------------------------------------------------------

    def plan_delinquency(self, b: _Borrower) -> None:
        """A loan whose installment due on day 30..days-5 goes unpaid after weeks of decline."""
        rng = self.rng
        due_day = rng.randint(30, self.days - 5)
        due = self.dates[due_day]
        installment = 1
        while (_shift_months(due, 1 - installment) - self.dates[0]).days > 40:
            installment += 1
        first_due = _shift_months(due, 1 - installment)
        count = max(installment + 2, rng.choice((6, 12)))
        dues = _monthly_dues(first_due, count, dom=due.day)
        loan = self.loan(b, rng.randint(MINUTE, 59 * MINUTE), dues)
        loan.missed_from = installment
        if rng.random() < 0.5:
            loan.partial = round(loan.amount_due * rng.uniform(0.1, 0.45))
        b.loans.append(loan)
        # Keep a week of normal inflows before the decline: a baseline to decline from.
        start_day = due_day - rng.randint(21, min(35, due_day - 7))
        floor = rng.uniform(0.15, 0.30)
        b.decline = (start_day, due_day, floor)
        self.label(
            start_day * DAY,
            b,
            "delinquency_risk",
            "missed_installment",
            (due_day + 3) * DAY + DAY - 1,
            {
                "loan_id": loan.loan_id,
                "installment": installment,
                "due_date": due.isoformat(),
                "amount_due": _money(loan.amount_due),
                "paid": _money(loan.partial),
                "decline_start": self.dates[start_day].isoformat(),
                "inflow_floor": round(floor, 3),
            },
        )

    def ring_days(self) -> list[int]:
        """2–4 days at least two apart, each leaving room for a cycle to finish next morning."""
        candidates = self.rng.sample(range(1, self.days - 1), self.days - 2)
        wanted = self.rng.randint(2, 4)
        days: list[int] = []
        for d in candidates:
            if all(abs(d - other) >= 2 for other in days):
                days.append(d)
                if len(days) == wanted:
                    break
        return sorted(days)

    def ring(self, number: int, members: list[_Borrower]) -> None:
        """A→B→C→A on each ring day, every hop a little smaller (fees) and 20 min–6 h later."""
        rng = self.rng
        cycles: list[list[dict[str, str]]] = []
        first = last = 0
        for d in self.ring_days():
            t = d * DAY + rng.randint(8 * HOUR, 18 * HOUR)
            first = first or t
            cents = rng.randint(5_000_000, 50_000_000)
            if rng.random() < 0.5:
                cents = cents // 10_000 * 10_000
            hops = []
            for i, payer in enumerate(members):
                payee = members[(i + 1) % 3]
                if i:
                    t += rng.randint(20 * MINUTE, 6 * HOUR)
                    cents = round(cents * (1 - rng.uniform(0.001, 0.02)))
                self.transfer(t, payer, payee, cents, "payment for goods")
                hops.append(
                    {
                        "ts": self.iso(t),
                        "from": payer.account,
                        "to": payee.account,
                        "amount": _money(cents),
                    }
                )
            cycles.append(hops)
            last = t
        detail = {
            "ring": f"ring-{number:02d}",
            "members": [m.id for m in members],
            "accounts": [m.account for m in members],
            "cycles": cycles,
        }
        for member in members:
            self.label(first, member, "falsified_flow", "circular_transfer", last, {**detail})

    def takeover(self, victim: _Borrower) -> None:
        """Failure burst from a new device in another city, success, payout change, drawdown."""
        rng = self.rng
        city = rng.choice([c for c in _CITIES if c != victim.city])
        ip = f"{city.mobile}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        device = _Device(self.device(rng, phone=True).id, rng.choice(_ATTACKER_AGENTS), True)
        geo = self.geo(rng, city)
        start = rng.randint(7, self.days - 1) * DAY + rng.randint(0, 20 * HOUR)
        window = rng.randint(5 * MINUTE, 20 * MINUTE)
        failures = rng.randint(6, 15)
        offsets = [0, *sorted(rng.randint(1, window - 1) for _ in range(failures - 2)), window]
        for offset in offsets:
            self.login(start + offset, victim, "login", device, ip, geo, success=False)
        success = start + window + rng.randint(20, 180)
        self.login(success, victim, "login", device, ip, geo)
        change = success + rng.randint(2 * MINUTE, 55 * MINUTE)
        self.login(change, victim, "payout_account_change", device, ip, geo)
        drawdown = rng.randint(change + MINUTE, success + 115 * MINUTE)
        cents = _round_to(rng.uniform(20_000, 300_000) * 100, 1000)
        self.login(drawdown, victim, "drawdown", device, ip, geo, amount=cents)
        self.label(
            start,
            victim,
            "abnormal_behaviour",
            "account_takeover",
            drawdown,
            {
                "device_id": device.id,
                "ip": ip,
                "city": city.name,
                "failed_logins": failures,
                "success_ts": self.iso(success),
                "drawdown_amount": _money(cents),
            },
        )

    def run(self) -> Simulation:
        config, n = self.config, self.config.borrowers
        rings = _resolve(
            config.circular_rings, max(1, n // 60), self.days >= 7, "circular_rings", "days >= 7"
        )
        takeovers = _resolve(
            config.takeovers,
            max(1, n // 50),
            self.days >= 8,
            "takeovers",
            "days >= 8 (a week of normal logins first)",
        )
        delinquents = _resolve(
            config.delinquents,
            max(1, n // 25),
            self.days >= 35,
            "delinquents",
            "days >= 35 (a due date on day 30..days-5)",
        )
        if 3 * rings + takeovers + delinquents > n:
            raise ValueError(
                f"{n} borrowers cannot hold {rings} rings of 3, {takeovers} takeovers and "
                f"{delinquents} delinquents; set the counts explicitly"
            )
        ring_members, victims = self.plan(rings, takeovers, delinquents)
        for b in self.borrowers:
            self.benign(b)
        for number, members in enumerate(ring_members, start=1):
            self.ring(number, members)
        for victim in victims:
            self.takeover(victim)
        return self.finish()


def simulate(config: SimulationConfig) -> Simulation:
    """Generate the whole period; the same config always gives the same records and labels."""
    return _World(config).run()


def write_jsonl(simulation: Simulation, events_path: Path, labels_path: Path | None) -> None:
    """Write one JSON object per line, in the simulation's order, so files replay and diff."""
    events_path.parent.mkdir(parents=True, exist_ok=True)
    with events_path.open("wb") as out:
        out.writelines(
            orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in simulation.records
        )
    if labels_path is not None:
        labels_path.parent.mkdir(parents=True, exist_ok=True)
        with labels_path.open("wb") as out:
            out.writelines(
                orjson.dumps(label, option=orjson.OPT_APPEND_NEWLINE) for label in simulation.labels
            )


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read a file written by :func:`write_jsonl` back, one object per line."""
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
