"""Deterministic synthetic lending traffic: a hard benign population plus labelled cases."""

from __future__ import annotations

import calendar
import gc
import math
import random
from bisect import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any, TypeVar

import orjson

from topics.names import Source, TopicNames

__all__ = [
    "SALE_DAY",
    "SLUMP_DAYS",
    "TYPOLOGIES",
    "Label",
    "Simulation",
    "SimulationConfig",
    "iter_jsonl",
    "simulate",
    "simulate_stream",
    "write_jsonl",
]

T = TypeVar("T")

MINUTE = 60
HOUR = 3_600
DAY = 86_400

FALSIFIED_FLOW = "falsified_flow"
ABNORMAL_BEHAVIOUR = "abnormal_behaviour"
DELINQUENCY_RISK = "delinquency_risk"

#: Every injected typology and its category. A case count counts rings of 3 borrowers for
#: ``circular_transfer``, attacker IPs (20–60 targets each) for ``credential_stuffing``,
#: shared devices (3–6 borrowers each) for ``device_ring``, and borrowers for the others.
TYPOLOGIES: dict[str, str] = {
    "circular_transfer": FALSIFIED_FLOW,
    "wash_trading": FALSIFIED_FLOW,
    "revenue_inflation": FALSIFIED_FLOW,
    "machine_generated": FALSIFIED_FLOW,
    "account_takeover": ABNORMAL_BEHAVIOUR,
    "account_takeover_device_replay": ABNORMAL_BEHAVIOUR,
    "credential_stuffing": ABNORMAL_BEHAVIOUR,
    "device_ring": ABNORMAL_BEHAVIOUR,
    "impossible_travel": ABNORMAL_BEHAVIOUR,
    "missed_installment": DELINQUENCY_RISK,
}

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
CGNAT_SHARE = 0.5  # mobile sessions that leave through one of the carrier's shared NAT addresses
CGNAT_PER_CITY = 2
#: A drawdown within this long of a payout-account change is held for a manual review.
HOLD_AFTER_PAYOUT_CHANGE = DAY
#: Default case counts stop before more than this share of the borrowers carries a case.
DEFAULT_CASE_SHARE = 0.35
AIRLINER_KMH = 800.0
TRAIN_KMH = 250.0
LENDER_REPAY = ("lender-repay", "Loan repayment")
LENDER_DISBURSE = ("lender-disburse", "Loan disbursement")
#: Memos people type on bank transfers between businesses; genuine and forged flows share them.
_B2B_MEMOS = (
    None,
    None,
    None,
    "payment for goods",
    "purchase",
    "invoice",
    "deposit",
    "service fee",
)


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
# Share of days a borrower opens the app: heavy users daily, light ones once or twice a week.
_ACTIVITY = (0.95, 0.7, 0.4, 0.15)
_ACTIVITY_CUM = _cum((35, 30, 20, 15))


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
# Card acquirers pay a merchant's card receipts of the day before in one batch, net of fees.
_ACQUIRERS = (
    ("acq-lakala", "Lakala settlement"),
    ("acq-unionpay", "UnionPay merchant settlement"),
    ("acq-sumpay", "Sumpay settlement"),
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


def _km(a: _City, b: _City) -> float:
    """Great-circle distance between two city centres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _journey(a: _City, b: _City) -> int:
    """Gate-to-gate seconds: a train under 350 km, otherwise a flight with boarding and taxi."""
    km = _km(a, b)
    if km < 350:
        return round((km / TRAIN_KMH + 0.3) * HOUR)
    return round((km / AIRLINER_KMH + 0.4) * HOUR)


_APP_VERSIONS = ("5.0.2", "5.1.9", "5.2.4", "5.3.0", "5.3.1")
_APP_VERSION_CUM = _cum((5, 10, 25, 40, 20))
_PHONE_MODELS = (
    "iPhone; iOS 17.4",
    "iPhone; iOS 18.1",
    "Android 14; Xiaomi 14",
    "Android 13; HUAWEI Mate 50",
    "Android 14; OPPO Find X7",
    "Android 12; vivo X80",
    "Android 11; Redmi Note 9",
    "Android 10; SM-G960F",
)
_DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; ``None`` case counts scale with the population.

    ``cases`` maps a typology of :data:`TYPOLOGIES` to its count; ``circular_rings``,
    ``takeovers`` and ``delinquents`` are the same as ``cases`` entries for
    ``circular_transfer``, ``account_takeover`` and ``missed_installment``.
    """

    borrowers: int = 200
    days: int = 60
    seed: int = 7
    #: Midnight of day 0; every timestamp carries this offset (the platform's time zone).
    start: datetime = datetime(2026, 1, 5, tzinfo=timezone(timedelta(hours=8)))
    # None -> the default below, or 0 if the period is too short to hold such a case
    # (rings need 7 days, takeovers 8, delinquents 35); an explicit impossible count is an error.
    circular_rings: int | None = None  # None -> max(1, borrowers // 150)
    takeovers: int | None = None  # None -> max(1, borrowers // 100)
    delinquents: int | None = None  # None -> max(1, borrowers // 50)
    cases: dict[str, int] | None = None
    topics: TopicNames = field(default_factory=TopicNames)


@dataclass(frozen=True)
class Label:
    """Ground truth of one injected case for one borrower, to score detectors against."""

    borrower_id: str
    category: str  # "falsified_flow" | "abnormal_behaviour" | "delinquency_risk"
    typology: str  # a key of TYPOLOGIES
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
    missed_from: int | None = None  # installments from this one on are not paid
    #: Explicit payments of some installments, (day, cents) each, instead of the usual habit.
    plan: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass(eq=False)
class _Borrower:
    """A borrower's fixed traits and the benign or injected episodes planned for it."""

    id: str
    number: str
    sector: _Sector
    rng: random.Random
    city: _City
    home_ip: str  # home or office broadband; an office address is shared by its tenants
    devices: list[_Device]
    activity: float  # chance of opening the app on a given day
    count_scale: float
    log_ticket: float
    regulars: list[str]
    clients: list[str]  # corporate clients (catering, wholesale) of consumer businesses too
    suppliers: list[str]
    platforms: list[tuple[str, str]]
    monthly_inflow: int  # cents, expected, before any shock
    supplier_ticket: float  # yuan
    landlord: str
    rent: int
    rent_dom: int
    payroll: int
    payroll_dom: int
    account: str
    second_account: str
    case: str | None = None  # the injected typology, if any
    seen_devices: set[str] = field(default_factory=set)  # devices it has logged in from
    loans: list[_Loan] = field(default_factory=list)
    pay_style: str = "normal"  # "normal" | "late" (1-2 days, within grace) | "early"
    # start day, bottom day, floor share of normal, day a recovery starts (None: no recovery)
    decline: tuple[int, int, float, int | None] | None = None
    quiet_from: int | None = None  # no sessions from this day on
    dormant: tuple[int, int] | None = None  # no sessions on these days (a holiday)
    partner: _Borrower | None = None  # another borrower it buys from (benign link)
    trader: tuple[str, int] | None = None  # partner it buys from and sells to, ticket cents
    # New clients of a genuine growth: from day, client, ticket cents, chance to pay on a weekday
    growth: list[tuple[int, str, int, float]] = field(default_factory=list)
    growth_span: tuple[int, int, float] | None = None  # first day, full day, extra share
    new_phone: _Device | None = None
    phone_change_day: int | None = None
    app_update: tuple[int, str] | None = None  # day, new user agent of the phone
    forgot_password_day: int | None = None
    legs: list[tuple[int, int, _City]] = field(default_factory=list)  # depart, arrive, to
    forced: dict[int, list[int]] = field(default_factory=dict)  # day -> session times
    actions: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # day -> actions
    shared: _Device | None = None  # a family member's or accountant's device
    shared_ip: str | None = None
    batch: tuple[int, int] | None = None  # platform settlement: first second of day, period
    platform_fee: float = 0.0
    unsettled: list[tuple[int, int, int]] = field(default_factory=list)  # t, platform, cents
    acquirer: tuple[str, str] | None = None
    acquirer_second: int = 0
    mdr: float = 0.0
    pos_pending: int = 0
    topups: bool = False
    big_contract_day: int | None = None
    last_payout_change: int = -DAY * 365


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


def _pick(rng: random.Random, items: Sequence[T], cum_weights: tuple[float, ...]) -> T:
    """``rng.choices(items, cum_weights=...)[0]`` without its overhead, on the hot path."""
    return items[bisect(cum_weights, rng.random() * cum_weights[-1], 0, len(items) - 1)]


def _second(rng: random.Random, hours_cum: tuple[float, ...]) -> int:
    return _pick(rng, _HOURS, hours_cum) * HOUR + int(rng.random() * HOUR)


def _shift_months(day: date, months: int, dom: int | None = None) -> date:
    """The same day of month (``dom``, default ``day``'s) ``months`` later, clamped if short."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day if dom is None else dom, last))


def _monthly_dues(first: date, count: int, dom: int | None = None) -> list[date]:
    """Monthly due dates on one day of month: the 31st falls on the 28th in February only."""
    return [_shift_months(first, k, dom) for k in range(count)]


def _mobile_ip(rng: random.Random, city: _City) -> str:
    return f"{city.mobile}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _phone_agent(rng: random.Random, version: str | None = None) -> str:
    version = version or rng.choices(_APP_VERSIONS, cum_weights=_APP_VERSION_CUM)[0]
    return f"LendApp/{version} ({rng.choice(_PHONE_MODELS)})"


def _upgraded(agent: str) -> str | None:
    """The user agent after an app update: same phone, newer app version."""
    if not agent.startswith("LendApp/"):
        return None
    version, model = agent.removeprefix("LendApp/").split(" ", 1)
    newer = _APP_VERSIONS[_APP_VERSIONS.index(version) + 1 :]
    return f"LendApp/{newer[-1]} {model}" if newer else None


@dataclass(frozen=True)
class _Rule:
    default: Callable[[int], int]
    min_days: int
    need: str
    min_borrowers: int  # borrowers one case needs at least


_RULES: dict[str, _Rule] = {
    "circular_transfer": _Rule(lambda n: max(1, n // 150), 7, "days >= 7", 3),
    "wash_trading": _Rule(lambda n: max(1, n // 100), 21, "days >= 21 (a week, then 2-3)", 1),
    "revenue_inflation": _Rule(
        lambda n: max(1, n // 100), 42, "days >= 42 (a ramp of 3+ weeks)", 1
    ),
    "machine_generated": _Rule(lambda n: max(1, n // 100), 21, "days >= 21 (a week, then 2+)", 1),
    "account_takeover": _Rule(
        lambda n: max(1, n // 100), 8, "days >= 8 (a week of normal logins first)", 1
    ),
    "account_takeover_device_replay": _Rule(
        lambda n: max(1, n // 100), 8, "days >= 8 (a week of normal logins first)", 1
    ),
    "credential_stuffing": _Rule(lambda n: n // 1000, 2, "days >= 2", 20),
    "device_ring": _Rule(lambda n: max(1, n // 400), 8, "days >= 8", 3),
    "impossible_travel": _Rule(lambda n: max(1, n // 100), 8, "days >= 8", 1),
    "missed_installment": _Rule(
        lambda n: max(1, n // 50), 35, "days >= 35 (a due date on day 30..days-5)", 1
    ),
}
_LEGACY = {
    "circular_transfer": "circular_rings",
    "account_takeover": "takeovers",
    "missed_installment": "delinquents",
}


def _case_counts(config: SimulationConfig) -> dict[str, int]:
    """Resolve every typology's count: explicit counts must be possible, defaults shrink to 0.

    Default cases are added in the order of :data:`TYPOLOGIES` while they leave at least
    ``1 - DEFAULT_CASE_SHARE`` of the population without a case.
    """
    cases = dict(config.cases or {})
    unknown = sorted(set(cases) - set(TYPOLOGIES))
    if unknown:
        raise ValueError(f"unknown typologies {unknown}; known: {sorted(TYPOLOGIES)}")
    for typology, name in _LEGACY.items():
        legacy = getattr(config, name)
        if legacy is not None:
            if typology in cases and cases[typology] != legacy:
                raise ValueError(f"{name}={legacy} contradicts cases[{typology!r}]")
            cases[typology] = legacy
    counts: dict[str, int] = {}
    defaults: list[str] = []
    for typology, rule in _RULES.items():
        explicit = cases.get(typology)
        feasible = config.days >= rule.min_days
        name = _LEGACY.get(typology, f"cases[{typology!r}]")
        if explicit is None:
            counts[typology] = 0
            if feasible:
                defaults.append(typology)
        elif explicit < 0:
            raise ValueError(f"{name} must not be negative, got {explicit}")
        elif explicit and not feasible:
            raise ValueError(f"{name}={explicit} needs {rule.need}")
        else:
            counts[typology] = explicit
    needed = sum(counts[t] * rule.min_borrowers for t, rule in _RULES.items())
    if needed > config.borrowers:
        raise ValueError(
            f"{config.borrowers} borrowers cannot hold the cases {counts} "
            f"(at least {needed} borrowers); set the counts explicitly"
        )
    budget = DEFAULT_CASE_SHARE * config.borrowers
    for typology in defaults:
        rule = _RULES[typology]
        count = rule.default(config.borrowers)
        if needed + count * rule.min_borrowers <= budget:
            counts[typology] = count
            needed += count * rule.min_borrowers
    return counts


class _World:
    """One run: the population, the plan of every episode, and the day-by-day event stream."""

    def __init__(self, config: SimulationConfig) -> None:
        if config.start.utcoffset() is None:
            raise ValueError("SimulationConfig.start must carry a UTC offset")
        if config.borrowers < 1 or config.days < 1:
            raise ValueError("a simulation needs at least one borrower and one day")
        self.config = config
        self.counts = _case_counts(config)
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
        self.buckets: dict[int, list[tuple[int, str, int, dict[str, Any]]]] = defaultdict(list)
        self.seq = 0
        self.open_from = 0  # events of earlier days have been emitted already
        self.labels: list[tuple[int, str, str, Label]] = []
        self.device_ids: set[str] = set()
        self.borrowers: list[_Borrower] = []
        self.cgnat: dict[str, list[str]] = {}
        self.counters = dict.fromkeys(self.prefix, 0)
        self._iso_fast = isinstance(self.tz, timezone) and config.start.microsecond == 0
        self._iso_suffix = config.start.isoformat()[19:]
        start = config.start
        self._iso_sod = start.hour * HOUR + start.minute * MINUTE + start.second
        self._iso_dates: list[str] = []

    # --- output -------------------------------------------------------------------------------

    def iso(self, t: int) -> str:
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
            "sector": b.sector.name,
        }
        if name is not None:
            payload["counterparty_name"] = name
        if memo is not None:
            payload["memo"] = memo
        self._add(t, Source.TRANSACTIONS, payload)

    def transfer(
        self, t: int, payer: _Borrower, payee: _Borrower, cents: int, memo: str | None
    ) -> None:
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

    def label(self, t: int, b: _Borrower, typology: str, end: int, detail: dict[str, Any]) -> None:
        category = TYPOLOGIES[typology]
        label = Label(b.id, category, typology, self.iso(t), self.iso(end), detail)
        self.labels.append((t, typology, b.id, label))

    def sorted_labels(self) -> list[Label]:
        return [item[3] for item in sorted(self.labels, key=lambda item: item[:3])]

    def stream(self) -> Iterator[dict[str, Any]]:
        """Generate one day for everyone, then emit the day before: late events still fit."""
        for d in range(self.days):
            for b in self.borrowers:
                self.inflows(b, d)
                self.outflows(b, d)
                self.sessions(b, d)
            if d:
                yield from self.flush(d - 1)
        yield from self.flush(self.days - 1)

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

    # --- population ---------------------------------------------------------------------------

    def device(self, rng: random.Random, phone: bool, agent: str | None = None) -> _Device:
        """A device id never handed out before, so 'new device' always means new."""
        while (device_id := f"dev-{rng.getrandbits(48):012x}") in self.device_ids:
            pass
        self.device_ids.add(device_id)
        if agent is None:
            agent = _phone_agent(rng) if phone else rng.choice(_DESKTOP_AGENTS)
        return _Device(device_id, agent, phone)

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
            clients = [f"corp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(1, 4))]
        else:
            regulars = [f"corp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(3, 8))]
            clients = regulars
        week = (5 + 2 * sector.weekend) / 7
        mean_ticket = sector.ticket * ticket_scale * math.exp(sector.sigma**2 / 2)
        monthly = 30 * sector.inflows_per_day * week * count_scale * mean_ticket * 100
        supplier_week = (5 + 2 * sector.supplier_weekend) / 7
        supplier_payments = 30 * sector.suppliers_per_day * supplier_week
        platforms = []
        if sector.name == "ecommerce":
            platforms = rng.sample(_PLATFORMS, rng.randint(1, 3))
        number = f"{index:05d}"
        return _Borrower(
            id=f"b-{number}",
            number=number,
            sector=sector,
            rng=rng,
            city=city,
            home_ip=f"{city.broadband}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            devices=devices,
            activity=rng.choices(_ACTIVITY, cum_weights=_ACTIVITY_CUM)[0],
            count_scale=count_scale,
            log_ticket=math.log(sector.ticket * ticket_scale),
            regulars=regulars,
            clients=clients,
            suppliers=[f"supp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(2, 5))],
            platforms=platforms,
            monthly_inflow=round(monthly),
            supplier_ticket=0.55 * monthly / 100 / supplier_payments,
            landlord=f"land-{rng.randrange(10**6):06d}",
            rent=_round_to(monthly * rng.uniform(0.05, 0.10), 1000),
            rent_dom=rng.randint(1, 5),
            payroll=_round_to(monthly * rng.uniform(0.12, 0.25), 1000, minimum_units=2),
            payroll_dom=rng.choice((10, 15, 25)),
            account=f"acct-{number}-1",
            second_account=f"acct-{number}-2",
        )

    def loan(self, b: _Borrower, booked: int, dues: list[date], amount_due: int = 0) -> _Loan:
        """A loan whose installment is, unless given, 5–15 % of the borrower's monthly inflow."""
        amount_due = amount_due or round(b.monthly_inflow * b.rng.uniform(0.05, 0.15))
        return _Loan(f"ln-{b.number}-{len(b.loans) + 1}", booked, dues, amount_due)

    def book(self, b: _Borrower, booked: int, principal: int) -> _Loan:
        """The schedule of a drawdown: 6 or 12 monthly installments from a month later."""
        count = b.rng.choice((6, 12))
        first_due = _shift_months(self.dates[0] + timedelta(days=booked // DAY), 1)
        due = round(principal * (1 + 0.012 * count) / count)
        loan = self.loan(b, booked, _monthly_dues(first_due, count), due)
        b.loans.append(loan)
        self.repayments(b, loan)
        return loan

    def device_on(self, b: _Borrower, d: int) -> _Device:
        """The borrower's main phone on day ``d``, as the benign sessions will use it."""
        device = b.devices[0]
        if b.new_phone is not None and b.phone_change_day is not None and d >= b.phone_change_day:
            device = b.new_phone
        if b.app_update is not None and d >= b.app_update[0]:
            device = replace(device, user_agent=b.app_update[1])
        return device

    def geo(self, rng: random.Random, city: _City) -> dict[str, Any]:
        return {
            "lat": round(city.lat + rng.gauss(0, 0.03), 4),
            "lon": round(city.lon + rng.gauss(0, 0.03), 4),
            "city": city.name,
        }

    def weekend(self, d: int) -> bool:
        return (self.first_weekday + d) % 7 >= 5

    def office_second(self, rng: random.Random) -> int:
        return _second(rng, _OFFICE_CUM)

    # --- planning -----------------------------------------------------------------------------

    def plan(self) -> None:
        """Draw the population, every injected case and every benign episode up front."""
        rng = self.rng
        self.borrowers = [self.borrower(i, s) for i, s in enumerate(self.sectors(), start=1)]
        self.cgnat = {c.name: [_mobile_ip(rng, c) for _ in range(CGNAT_PER_CITY)] for c in _CITIES}
        self.plan_offices()
        pool = rng.sample(self.borrowers, len(self.borrowers))
        counts = self.counts
        rings = [self.take(pool, 3) for _ in range(counts["circular_transfer"])]
        reserved = sum(
            count * _RULES[t].min_borrowers
            for t, count in counts.items()
            if t not in ("circular_transfer", "device_ring")
        )
        device_rings = []
        for left in range(counts["device_ring"], 0, -1):
            # An agent recruits in its own city.
            spare = len(pool) - reserved - 3 * left
            size = 3 + rng.randint(0, max(0, min(3, spare)))
            device_rings.append(self.take(pool, size, self.same_city(pool[0].city)))

        def active(b: _Borrower) -> bool:
            return b.activity >= 0.4  # victims with a login history to stand out from

        singles = {
            typology: self.take(pool, counts[typology], active if "takeover" in typology else None)
            for typology in (
                "wash_trading",
                "revenue_inflation",
                "machine_generated",
                "account_takeover",
                "account_takeover_device_replay",
                "impossible_travel",
                "missed_installment",
            )
        }
        campaigns = []
        for left in range(counts["credential_stuffing"], 0, -1):
            most = min(60, len(pool) - 20 * (left - 1))
            campaigns.append(self.take(pool, rng.randint(20, most)))
        for members in rings:
            for b in members:
                b.case = "circular_transfer"
        for members in device_rings:
            for b in members:
                b.case = "device_ring"
        for typology, chosen in singles.items():
            for b in chosen:
                b.case = typology
        for targets in campaigns:
            for b in targets:
                b.case = "credential_stuffing"

        # Loans first: delinquents and the other borrowers' ordinary loans, booked on day 0.
        for b in singles["missed_installment"]:
            self.plan_delinquency(b)
        others = [b for b in self.borrowers if b.case != "missed_installment"]
        share = (LOAN_SHARE * len(self.borrowers) - counts["missed_installment"]) / max(
            1, len(others)
        )
        for b in others:
            if b.case != "revenue_inflation" and rng.random() < share:
                first_due = self.dates[0] + timedelta(days=rng.randint(10, 40))
                dues = _monthly_dues(first_due, rng.choice((6, 12)))
                b.loans.append(self.loan(b, rng.randint(MINUTE, 59 * MINUTE), dues))
        payers = [b for b in others if b.loans]
        styles = rng.sample(payers, len(payers))
        for b in styles[: max(1, round(0.1 * len(payers)))]:
            b.pay_style = "late"
        for b in styles[max(1, round(0.1 * len(payers))) : round(0.2 * len(payers))]:
            b.pay_style = "early"

        self.plan_benign()
        # Injected cases after the benign plan: they read each borrower's devices on the day.
        for number, members in enumerate(rings, start=1):
            self.ring(number, members)
        for number, members in enumerate(device_rings, start=1):
            self.device_ring(number, members)
        for b in singles["wash_trading"]:
            self.wash(b)
        for b in singles["revenue_inflation"]:
            self.inflation(b)
        for b in singles["machine_generated"]:
            self.machine(b)
        for b in singles["account_takeover"]:
            self.takeover(b, replay=False)
        for b in singles["account_takeover_device_replay"]:
            self.takeover(b, replay=True)
        for b in singles["impossible_travel"]:
            self.impossible_travel(b)
        for number, targets in enumerate(campaigns, start=1):
            self.stuffing(number, targets)
        for b in self.borrowers:
            for loan in b.loans:
                self.repayments(b, loan)

    def take(
        self, pool: list[_Borrower], count: int, prefer: Callable[[_Borrower], bool] | None = None
    ) -> list[_Borrower]:
        """Remove ``count`` borrowers from the pool, those ``prefer`` likes first."""
        chosen = [b for b in pool if prefer(b)][:count] if prefer is not None else []
        chosen += [b for b in pool if b not in chosen][: count - len(chosen)]
        for b in chosen:
            pool.remove(b)
        return chosen

    @staticmethod
    def same_city(city: _City) -> Callable[[_Borrower], bool]:
        return lambda b: b.city is city

    def plan_offices(self) -> None:
        """Co-working tenants share one office address; some of them only a handful."""
        rng = self.rng
        by_city: dict[str, list[_Borrower]] = defaultdict(list)
        for b in self.borrowers:
            by_city[b.city.name].append(b)
        for city in _CITIES:
            tenants = [b for b in by_city[city.name] if rng.random() < 0.12]
            while len(tenants) >= 2:
                size = min(len(tenants), rng.randint(3, 10))
                ip = f"{city.broadband}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                for b in tenants[:size]:
                    b.home_ip = ip
                del tenants[:size]

    def plan_benign(self) -> None:
        """Benign look-alikes of every injected case, spread over labelled borrowers too."""
        rng, n, days = self.rng, len(self.borrowers), self.days
        everyone = self.borrowers

        def some(count: int, where: Callable[[_Borrower], bool] | None = None) -> list[_Borrower]:
            eligible = [b for b in everyone if where is None or where(b)]
            return rng.sample(eligible, min(max(0, count), len(eligible)))

        def free(*cases: str) -> Callable[[_Borrower], bool]:
            return lambda b: b.case not in cases

        # Phones change and apps update; a forgotten password is reset on a known device.
        for b in some(max(1, round(0.05 * n)), lambda b: days > 1):
            b.new_phone = self.device(b.rng, phone=True, agent=_phone_agent(b.rng, "5.3.1"))
            b.phone_change_day = 1 + rng.randrange(max(1, days - 1))
            b.forced.setdefault(b.phone_change_day, []).append(
                b.phone_change_day * DAY + _second(b.rng, _LOGIN_CUM)
            )
        for b in some(round(0.15 * n), lambda b: b.new_phone is None):
            agent = _upgraded(b.devices[0].user_agent)
            if agent is not None:
                b.app_update = (rng.randrange(days), agent)
        for b in some(max(1, round(0.02 * n)), lambda b: days > 1 and b.new_phone is None):
            b.forgot_password_day = 1 + rng.randrange(max(1, days - 1))
            # A password is forgotten on a device used before: a session some days earlier.
            for day in (rng.randrange(b.forgot_password_day), b.forgot_password_day):
                b.forced.setdefault(day, []).append(day * DAY + _second(b.rng, _LOGIN_CUM))
        # Trips of a few days, and sales reps who fly every week or two.
        no_trips = free("impossible_travel")
        for b in some(max(1, round(0.05 * n)), no_trips):
            first = rng.randrange(days)
            self.trip(b, first, first + rng.randint(2, 4), rng.choice(self.away(b)), forced=False)
        for b in some(max(1, round(0.02 * n)), lambda b: no_trips(b) and not b.legs):
            day = rng.randrange(7)
            while day < days:
                length = rng.randint(1, 3)
                self.trip(b, day, day + length, rng.choice(self.away(b)), forced=True)
                day += length + rng.randint(3, 10)
        for b in some(round(0.04 * n), lambda b: days >= 20):
            first = rng.randrange(days - 7)
            b.dormant = (first, first + rng.randint(7, 20))
        # Shared devices: a family's tablet or an accountant's computer, never more than two.
        sharing: set[str] = set()
        for owner in some(round(0.03 * n), lambda b: len(b.devices) == 2):
            guests = [
                g
                for g in everyone
                if g.city is owner.city and g.id not in sharing and g is not owner
            ]
            if owner.id not in sharing and guests:
                guest = rng.choice(guests)
                guest.shared, guest.shared_ip = owner.devices[1], owner.home_ip
                sharing |= {owner.id, guest.id}

        # Payout changes, sometimes right before a drawdown (a new bank account): held for review.
        for b in some(round(0.03 * n)):
            b.actions.setdefault(rng.randrange(days), []).append(("payout_account_change", 0))
        for b in some(max(1, round(0.005 * n)), lambda b: not b.loans and b.case is None):
            day = rng.randrange(days)
            cents = _round_to(b.monthly_inflow * rng.uniform(0.3, 1.5), 1000, minimum_units=10)
            b.actions.setdefault(day, []).extend(
                [("payout_account_change", 0), ("loan_application", cents), ("drawdown", cents)]
            )
        for b in some(round(0.08 * n), lambda b: not b.loans and b.case != "revenue_inflation"):
            self.plan_application(b, rng.randrange(days), drawdown=True)
        for b in some(round(0.03 * n), free("revenue_inflation", "device_ring")):
            self.plan_application(b, rng.randrange(days), drawdown=False)
        # Genuine growth: new big clients over weeks, then a loan application; the clients stay.
        if days >= 45:
            for b in some(
                max(1, round(0.015 * n)),
                lambda b: b.case is None and not b.loans and not b.actions,
            ):
                self.plan_growth(b)

        # Money habits that look like forged flows.
        makers = [b for b in everyone if b.sector.name == "manufacturing"]
        # Lumps of money that do not decline with sales: not on a case of declining inflows.
        makers = [b for b in makers if b.case != "missed_installment"]
        for b in rng.sample(makers, max(1, len(makers) // 10) if makers else 0):
            b.big_contract_day = rng.randrange(days)
        b2b = [b for b in everyone if not b.sector.consumer]
        for b in some(round(0.1 * n)):
            partners = [p for p in b2b if p is not b]
            if partners:
                b.partner = rng.choice(partners)
        for b in some(
            max(1, round(0.03 * n)),
            lambda b: (
                b.case not in ("wash_trading", "missed_installment")
                and b.sector.name != "ecommerce"
            ),
        ):
            ticket = min(
                200_000_00, max(20_000_00, round(b.monthly_inflow * rng.uniform(0.1, 0.4)))
            )
            b.trader = (rng.choice((b.suppliers[0], b.clients[0])), ticket)
        for b in some(max(1, round(0.03 * n)), free("missed_installment")):
            self.deposits(b)
        for b in everyone:
            if b.sector.name == "ecommerce" and b.rng.random() < 0.5:
                period = b.rng.choice((DAY, DAY, DAY, 12 * HOUR, 6 * HOUR, 4 * HOUR))
                first = b.rng.choice((1, 2, 3, 6, 9)) * HOUR + b.rng.randrange(60) * MINUTE
                b.batch = (first % period, period)
                b.platform_fee = b.rng.uniform(0.006, 0.05)
            elif b.sector.name in ("restaurant", "retail"):
                if b.rng.random() < 0.4:
                    b.acquirer = b.rng.choice(_ACQUIRERS)
                    b.acquirer_second = b.rng.randint(7 * HOUR, 11 * HOUR)
                    b.mdr = b.rng.uniform(0.0038, 0.006)
                b.topups = b.rng.random() < 0.3
        # Seasonal businesses decline for weeks and recover, paying every installment.
        for b in some(max(1, round(0.02 * n)), lambda b: bool(b.loans) and b.case is None):
            start = rng.randrange(max(1, days - 30))
            bottom = start + rng.randint(21, 35)
            b.decline = (start, bottom, rng.uniform(0.35, 0.6), bottom + rng.randint(5, 20))

    def away(self, b: _Borrower) -> list[_City]:
        return [c for c in _CITIES if c is not b.city]

    def trip(self, b: _Borrower, first: int, back: int, city: _City, forced: bool) -> None:
        """Out on ``first``, home on ``back``; a sales rep logs in at both ends of each flight."""
        rng = b.rng
        for day, origin, to, hours in (
            (first, b.city, city, (6, 12)),
            (back, city, b.city, (14, 20)),
        ):
            depart = day * DAY + rng.randint(hours[0] * HOUR, hours[1] * HOUR)
            arrive = depart + _journey(origin, to)
            b.legs.append((depart, arrive, to))
            if forced:
                before = depart - rng.randint(10 * MINUTE, 60 * MINUTE)
                after = arrive + rng.randint(5 * MINUTE, 40 * MINUTE)
                for t in (before, after):
                    b.forced.setdefault(t // DAY, []).append(t)
        b.legs.sort(key=lambda leg: leg[0])

    def plan_application(self, b: _Borrower, day: int, drawdown: bool) -> None:
        """A loan application; if approved, a drawdown the same session or a few days later."""
        rng = b.rng
        asked = _round_to(b.monthly_inflow * rng.uniform(0.3, 2.0), 1000, minimum_units=10)
        b.actions.setdefault(day, []).append(("loan_application", asked))
        if drawdown:
            cents = min(asked, _round_to(asked * rng.uniform(0.5, 1.0), 1000, minimum_units=10))
            later = day + rng.choice((0, 0, 1, 2, 3, 5))
            b.actions.setdefault(later, []).append(("drawdown", cents))

    def plan_growth(self, b: _Borrower) -> None:
        """New big clients arrive over 3–6 weeks; the borrower applies and the clients stay."""
        rng = b.rng
        ramp = rng.randint(21, min(42, self.days - 24))
        apply_day = rng.randint(ramp + 14, self.days - 10)
        first = apply_day - ramp
        extra = b.monthly_inflow * rng.uniform(0.6, 1.5)
        # Big clients pay large invoices (10k+); a small business's growth is then as steep as
        # a forged one, which is what makes it a hard case.
        clients = rng.randint(2, 6)
        ticket = min(150_000_00, max(10_000_00, round(extra / clients / (30 * 5 / 7 * 0.3))))
        for k in range(clients):
            start = first + round(k * ramp / clients) + rng.randint(0, 3)
            chance = max(0.2, min(0.35, extra / clients / ticket / (30 * 5 / 7)))
            b.growth.append((start, f"corp-{rng.randrange(10**6):06d}", ticket, chance))
        b.growth_span = (first, apply_day, extra / b.monthly_inflow)
        self.plan_application(b, apply_day, drawdown=True)

    def deposits(self, b: _Borrower) -> None:
        """A deposit paid out and returned whole, days later or the same day."""
        rng = b.rng
        for _ in range(rng.randint(1, 2)):
            day = rng.randrange(self.days)
            cents = _round_to(b.monthly_inflow * rng.uniform(0.1, 0.6), 100)
            counterparty = rng.choice((*b.suppliers, *b.clients))
            out = day * DAY + self.office_second(rng)
            back = out + rng.randint(5 * MINUTE, 8 * HOUR)
            if rng.random() < 0.75:
                back += rng.randint(1, 10) * DAY
            memo = rng.choice(_B2B_MEMOS)
            self.tx(out, b, b.account, counterparty, "out", cents, "bank_transfer", memo=memo)
            self.tx(back, b, b.account, counterparty, "in", cents, "bank_transfer", memo=memo)

    # --- benign traffic -----------------------------------------------------------------------

    def decline(self, b: _Borrower, d: int) -> float:
        if b.decline is None or d < b.decline[0]:
            return 1.0
        start, bottom, floor, recover = b.decline
        if d < bottom:
            return 1.0 - (1.0 - floor) * (d - start) / (bottom - start)
        if recover is None or d < recover:
            return floor
        return min(1.0, floor + (1.0 - floor) * (d - recover) / 14)

    def growth(self, b: _Borrower, d: int) -> float:
        if b.growth_span is None or d < b.growth_span[0]:
            return 0.0
        first, full, extra = b.growth_span
        return extra * min(1.0, (d - first) / max(1, full - first))

    def inflows(self, b: _Borrower, d: int) -> None:
        rng, s = b.rng, b.sector
        weekend = self.weekend(d)
        base = d * DAY
        lam = s.inflows_per_day * b.count_scale * (s.weekend if weekend else 1.0)
        sale = s.name == "ecommerce" and d == SALE_DAY
        if sale:
            lam *= SALE_BOOST
        if s.name == "restaurant" and d in SLUMP_DAYS:
            lam *= SLUMP_INFLOW
        # A failing business sees fewer and smaller payments: split the decline between the two,
        # so that even a borrower with one or two large inflows a day shows it.
        shrink = math.sqrt(self.decline(b, d))
        lam *= shrink
        if b.acquirer is not None and b.pos_pending:
            # Yesterday's card receipts, net of the acquirer's fee, at the acquirer's hour.
            cents = round(b.pos_pending * (1 - b.mdr))
            t = base + b.acquirer_second + rng.randint(0, 40)
            counterparty, name = b.acquirer
            self.tx(t, b, b.account, counterparty, "in", cents, "pos", name=name)
            b.pos_pending = 0
        # Returns follow a sale: refunds double in the week after it.
        refund_rate = s.refund_rate * (2 if s.name == "ecommerce" and 0 < d - SALE_DAY <= 7 else 1)
        for hour in rng.choices(
            _HOURS, cum_weights=_SALE_CUM if sale else s.hours_cum, k=_poisson(rng, lam)
        ):
            t = base + hour * HOUR + int(rng.random() * HOUR)
            channel = _pick(rng, s.channels, s.channel_cum)
            x = rng.lognormvariate(b.log_ticket, s.sigma) * shrink
            cents = max(1, round(x)) * 100 if rng.random() < 0.4 else max(100, round(x * 100))
            if channel == "ecommerce":
                i = rng.randrange(len(b.platforms))
                if b.batch is not None:
                    b.unsettled.append((t, i, cents))
                else:
                    counterparty, name = b.platforms[i]
                    self.tx(t, b, b.account, counterparty, "in", cents, channel, name=name)
                continue
            if channel == "pos" and b.acquirer is not None:
                b.pos_pending += cents
                continue
            if rng.random() < s.regular_share:
                counterparty = rng.choice(b.regulars)
            elif s.consumer:
                counterparty = f"cust-{rng.randrange(10**8):08d}"
            else:
                counterparty = f"corp-{rng.randrange(10**6):06d}"
            memo = None if s.consumer else rng.choice(_B2B_MEMOS)
            self.tx(t, b, b.account, counterparty, "in", cents, channel, memo=memo)
            if rng.random() < refund_rate:
                back = t + rng.randint(30 * MINUTE, 20 * HOUR)
                self.tx(back, b, b.account, counterparty, "out", cents, channel, memo="refund")
        if b.batch is not None:
            self.settle(b, d)
        if s.consumer and not weekend and rng.random() < 0.08 * shrink:
            # A catering order or a wholesale buyer pays by bank transfer.
            cents = round(math.exp(b.log_ticket) * 100 * rng.uniform(10, 60) * shrink)
            cents = _round_to(cents, 100) if rng.random() < 0.5 else cents
            memo = rng.choice(_B2B_MEMOS)
            self.tx(
                base + self.office_second(rng),
                b,
                b.account,
                rng.choice(b.clients),
                "in",
                cents,
                "bank_transfer",
                memo=memo,
            )
        if b.topups and rng.random() < 0.35 * shrink:
            # Members top up their prepaid cards in round sums.
            cents = rng.choice((100, 200, 200, 300, 500, 500, 1000)) * 100
            t = base + _second(rng, s.hours_cum)
            self.tx(t, b, b.account, rng.choice(b.regulars), "in", cents, "wallet")
        for first, client, ticket, chance in b.growth:
            if d >= first and not weekend and rng.random() < chance:
                cents = round(ticket * rng.lognormvariate(0, 0.3))
                cents = _round_to(cents, 1000) if rng.random() < 0.4 else cents
                memo = rng.choice(_B2B_MEMOS)
                t = base + self.office_second(rng)
                self.tx(t, b, b.account, client, "in", cents, "bank_transfer", memo=memo)
        if b.trader is not None and not weekend and rng.random() < 0.2:
            counterparty, ticket = b.trader
            cents = round(ticket * rng.lognormvariate(0, 0.3) * rng.uniform(1.05, 1.4))
            cents = _round_to(cents, 100) if rng.random() < 0.3 else cents
            memo = rng.choice(_B2B_MEMOS)
            t = base + self.office_second(rng)
            self.tx(t, b, b.account, counterparty, "in", cents, "bank_transfer", memo=memo)
        if d == b.big_contract_day:
            cents = _round_to(math.exp(b.log_ticket) * 100 * rng.uniform(15, 40), 1000)
            self.tx(
                base + self.office_second(rng),
                b,
                b.account,
                f"corp-{rng.randrange(10**6):06d}",
                "in",
                cents,
                "bank_transfer",
                memo="contract prepayment",
            )

    def settle(self, b: _Borrower, d: int) -> None:
        """Platform settlement batches at fixed times: orders until an hour before, net of fees."""
        assert b.batch is not None
        first, period = b.batch
        rng = b.rng
        t = d * DAY + first
        while t < (d + 1) * DAY:
            cutoff = t - HOUR
            sums: dict[int, int] = defaultdict(int)
            keep = []
            for order in b.unsettled:
                if order[0] < cutoff:
                    sums[order[1]] += order[2]
                else:
                    keep.append(order)
            b.unsettled = keep
            for i in sorted(sums):
                counterparty, name = b.platforms[i]
                cents = round(sums[i] * (1 - b.platform_fee))
                at = t + rng.randint(0, 25)
                self.tx(at, b, b.account, counterparty, "in", cents, "ecommerce", name=name)
            t += period

    def outflows(self, b: _Borrower, d: int) -> None:
        rng, s = b.rng, b.sector
        weekend = self.weekend(d)
        base = d * DAY
        scale = (s.supplier_weekend if weekend else 1.0) * (1 + self.decline(b, d)) / 2
        scale *= 1 + 0.6 * self.growth(b, d)
        if s.name == "restaurant" and d in SLUMP_DAYS:
            scale *= SLUMP_OUTFLOW
        for _ in range(_poisson(rng, s.suppliers_per_day * scale)):
            cents = b.supplier_ticket * rng.lognormvariate(0, 0.5) * 100
            cents = _round_to(cents, 100) if rng.random() < 0.25 else max(100, round(cents))
            self.tx(
                base + self.office_second(rng),
                b,
                b.account,
                rng.choice(b.suppliers),
                "out",
                cents,
                "bank_transfer",
                memo=rng.choice(_B2B_MEMOS),
            )
        for _ in range(_poisson(rng, s.expenses_per_day * (0.5 if weekend else 1.0))):
            cents = max(100, round(rng.lognormvariate(math.log(s.expense_ticket), 0.6) * 100))
            self.tx(
                base + _second(rng, s.hours_cum),
                b,
                b.account,
                f"{s.expense_prefix}-{rng.randrange(500):04d}",
                "out",
                cents,
                s.expense_channel,
            )
        if b.partner is not None and not weekend and rng.random() < PARTNER_PAYMENT_RATE:
            cents = max(100, round(b.supplier_ticket * rng.lognormvariate(0, 0.5) * 100))
            t = base + self.office_second(rng)
            self.transfer(t, b, b.partner, cents, rng.choice(_B2B_MEMOS))
        if b.trader is not None and not weekend and rng.random() < 0.25:
            counterparty, ticket = b.trader
            cents = round(ticket * rng.lognormvariate(0, 0.3))
            cents = _round_to(cents, 100) if rng.random() < 0.3 else cents
            memo = rng.choice(_B2B_MEMOS)
            t = base + self.office_second(rng)
            self.tx(t, b, b.account, counterparty, "out", cents, "bank_transfer", memo=memo)
        if rng.random() < OWN_TRANSFER_RATE:
            cents = b.monthly_inflow / 30 * rng.uniform(1, 5)
            cents = _round_to(cents, 1000) if rng.random() < 0.6 else max(100, round(cents))
            src, dst = (b.account, b.second_account)
            if rng.random() < 0.25:
                src, dst = dst, src
            t = base + self.office_second(rng)
            self.tx(t, b, src, dst, "out", cents, "bank_transfer", memo="own transfer")
            self.tx(t, b, dst, src, "in", cents, "bank_transfer", memo="own transfer")
        dom = self.dates[d].day
        if dom == b.rent_dom:
            self.tx(
                base + rng.randint(9 * HOUR, 11 * HOUR),
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
                base + rng.randint(9 * HOUR, 12 * HOUR),
                b,
                b.account,
                f"payroll-{b.number}",
                "out",
                b.payroll,
                "bank_transfer",
                name="Payroll agent",
                memo="payroll",
            )

    def city_at(self, b: _Borrower, t: int) -> _City | None:
        """Where the borrower is at ``t``; None while on a plane or a train."""
        city = b.city
        for depart, arrive, to in b.legs:
            if t < depart:
                break
            if t < arrive:
                return None
            city = to
        return city

    def sessions(self, b: _Borrower, d: int) -> None:
        rng = b.rng
        forced = b.forced.pop(d, [])
        actions = b.actions.pop(d, [])
        active = rng.random() < b.activity
        if b.quiet_from is not None and d >= b.quiet_from:
            return
        if b.dormant is not None and b.dormant[0] <= d < b.dormant[1]:
            active = False  # on holiday: only planned sessions
        times = forced
        if active or actions:
            count = _pick(rng, _SESSION_COUNTS, _SESSION_CUM)
            times = forced + [d * DAY + _second(rng, _LOGIN_CUM) for _ in range(count)]
        if not times:
            return
        times.sort()
        if b.app_update is not None and d == b.app_update[0]:
            b.devices[0] = replace(b.devices[0], user_agent=b.app_update[1])
        first = True
        for t in times:
            city = self.city_at(b, t)
            if city is None:
                continue  # on a plane or a train
            away = city is not b.city
            changing_phone = False
            if first and d == b.phone_change_day and b.new_phone is not None:
                b.devices[0], changing_phone = b.new_phone, True
            home_ip = b.home_ip
            if away or len(b.devices) == 1 or rng.random() < 0.75:
                device = b.devices[0]
            else:
                device = b.devices[1]
            if b.shared is not None and not away and rng.random() < 0.3:
                device, home_ip = b.shared, b.shared_ip or b.home_ip
            forgetting = first and d == b.forgot_password_day
            if forgetting and device.id not in b.seen_devices:
                device = next((dv for dv in b.devices if dv.id in b.seen_devices), device)
            if device.phone and (away or rng.random() < 0.5):
                if rng.random() < CGNAT_SHARE:
                    ip = rng.choice(self.cgnat[city.name])
                else:
                    ip = _mobile_ip(rng, city)
            else:
                ip = home_ip
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
            if first:
                for action, cents in actions:
                    last += rng.randint(2 * MINUTE, 20 * MINUTE)
                    if b.legs and self.city_at(b, last) is not city:
                        break
                    if action == "drawdown":
                        self.benign_drawdown(b, last, cents, device, ip, geo)
                    else:
                        self.login(last, b, action, device, ip, geo, amount=cents or None)
                        if action == "payout_account_change":
                            b.last_payout_change = last
            first = False
            if rng.random() < LOGOUT_RATE:
                last += rng.randint(3 * MINUTE, 90 * MINUTE)
                if b.legs and self.city_at(b, last) is not city:
                    continue  # boarded meanwhile: the session times out instead
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
        self, b: _Borrower, t: int, cents: int, device: _Device, ip: str, geo: dict[str, Any]
    ) -> None:
        """Funds land on the borrower's account and a schedule is booked; held after a payout
        change, the loan is released to the new payout account a few days later."""
        rng = b.rng
        self.login(t, b, "drawdown", device, ip, geo, amount=cents)
        if t - b.last_payout_change <= HOLD_AFTER_PAYOUT_CHANGE:
            self.book(b, t + rng.randint(1, 3) * DAY + rng.randint(0, 8 * HOUR), cents)
            return
        loan = self.book(b, t + MINUTE, cents)
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
            if due_day * DAY - 12 * DAY > self.end:
                break
            if k in loan.plan:
                for day, cents in loan.plan[k]:
                    self.pay(b, loan, k, day, cents)
                continue
            if loan.missed_from is not None and k >= loan.missed_from:
                continue
            if b.pay_style == "late":
                self.pay(b, loan, k, due_day + rng.choice((1, 2)), loan.amount_due)
                continue
            if b.pay_style == "early":
                pay_day = due_day - rng.randint(4, 12)
            else:
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
            # An early payer cannot pay before the schedule exists: right after it, then.
            t = loan.booked + b.rng.randint(HOUR, 6 * HOUR)
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

    # --- injected cases -----------------------------------------------------------------------

    def session(
        self,
        b: _Borrower,
        t: int,
        actions: list[tuple[str, int]],
        device: _Device | None = None,
    ) -> list[int]:
        """A planned session on the borrower's usual phone and network; the actions' instants."""
        rng = self.rng
        device = device or self.device_on(b, t // DAY)
        ip = b.home_ip if rng.random() < 0.5 else rng.choice(self.cgnat[b.city.name])
        geo = self.geo(rng, b.city)
        self.login(t, b, "login", device, ip, geo)
        instants = []
        for action, cents in actions:
            t += rng.randint(2 * MINUTE, 20 * MINUTE)
            self.login(t, b, action, device, ip, geo, amount=cents or None)
            instants.append(t)
        if rng.random() < LOGOUT_RATE:
            self.login(t + rng.randint(3 * MINUTE, 40 * MINUTE), b, "logout", device, ip, geo)
        return instants

    def plan_delinquency(self, b: _Borrower) -> None:
        """A loan whose installment due on day 30..days-5 is not paid by the end of the grace.

        Pre-signals vary: a decline of inflows, late or partial payments of the installment
        before, silence (no logins), a payout-account change days before the due date, several
        of these, or none at all (a weak-signal case).
        """
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
        b.loans.append(loan)
        b.pay_style = "normal"
        previous_day = (dues[installment - 2] - self.dates[0]).days if installment > 1 else -1

        weak = rng.random() < 0.25
        signals: list[str] = []
        if not weak:
            options = ["decline", "decline", "quiet", "payout_change"]
            if previous_day >= 3:
                options.append("late_earlier")
            signals = sorted(set(rng.sample(options, rng.randint(1, 3))))
        elif rng.random() < 0.5:
            signals = ["mild_decline"]
        detail: dict[str, Any] = {
            "loan_id": loan.loan_id,
            "installment": installment,
            "due_date": due.isoformat(),
            "amount_due": _money(loan.amount_due),
        }
        starts = [(due_day - 7) * DAY]
        if "decline" in signals or "mild_decline" in signals:
            # Keep a week of normal inflows before the decline: a baseline to decline from.
            start_day = due_day - rng.randint(21, min(35, due_day - 7))
            floor = rng.uniform(0.15, 0.30) if "decline" in signals else rng.uniform(0.6, 0.8)
            b.decline = (start_day, due_day, floor, None)
            detail["decline_start"] = self.dates[start_day].isoformat()
            detail["inflow_floor"] = round(floor, 3)
            starts.append(start_day * DAY)
        if "quiet" in signals:
            b.quiet_from = due_day - rng.randint(14, 21)
            detail["quiet_from"] = self.dates[b.quiet_from].isoformat()
            starts.append(b.quiet_from * DAY)
        if "late_earlier" in signals:
            part = round(loan.amount_due * rng.uniform(0.3, 0.7))
            if rng.random() < 0.5:
                plan = [(previous_day + rng.randint(4, 10), loan.amount_due)]
            else:
                plan = [
                    (previous_day, part),
                    (previous_day + rng.randint(5, 12), loan.amount_due - part),
                ]
            loan.plan[installment - 1] = plan
            detail["earlier_payments"] = [
                {"date": self.dates[day].isoformat(), "amount": _money(cents)}
                for day, cents in plan
                if day < self.days
            ]
            starts.append(previous_day * DAY)
        if "payout_change" in signals:
            day = due_day - rng.randint(2, 6)
            (t,) = self.session(
                b, day * DAY + _second(rng, _LOGIN_CUM), [("payout_account_change", 0)]
            )
            detail["payout_change_ts"] = self.iso(t)
            starts.append(t)
        paid = 0
        if rng.random() < 0.5:
            paid = round(loan.amount_due * rng.uniform(0.1, 0.45))
            loan.plan[installment] = [(due_day - rng.randint(0, 2), paid)]
        if rng.random() < 0.2:
            # Cured late: the rest comes a week or more after the grace, and the loan goes on.
            cure = due_day + rng.randint(7, 20)
            loan.plan.setdefault(installment, []).append((cure, loan.amount_due - paid))
            loan.missed_from = None
            detail["cured"] = self.dates[cure].isoformat() if cure < self.days else "after period"
        detail["paid"] = _money(paid)
        detail["signals"] = signals
        detail["strength"] = "weak" if weak else "strong"
        end = (due_day + 3) * DAY + DAY - 1
        if loan.missed_from is not None:
            # Not cured: every later installment goes unpaid too, so the borrower stays a
            # delinquent to the end of the period; alerts on those installments are right.
            detail["later_installments_missed"] = True
            end = max(end, self.days * DAY - 1)
        self.label(min(starts), b, "missed_installment", end, detail)

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
                self.transfer(t, payer, payee, cents, rng.choice(_B2B_MEMOS))
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
            self.label(first, member, "circular_transfer", last, {**detail})

    def wash(self, b: _Borrower) -> None:
        """The same sum in and out with one accomplice, the same day, on 4–8 days of 2–3 weeks."""
        rng = self.rng
        kind = "supp" if rng.random() < 0.3 else "corp"
        accomplice = f"{kind}-{rng.randrange(10**6):06d}"
        span = rng.randint(14, min(21, self.days - 7))
        first = rng.randint(7, self.days - span)
        days = sorted(rng.sample(range(first, first + span), rng.randint(4, min(8, span))))
        typical = math.exp(rng.uniform(math.log(20_000), math.log(200_000)))
        memo = rng.choice(_B2B_MEMOS)
        pairs = []
        start = end = 0
        for d in days:
            cents = round(min(199_000, max(21_000, typical * rng.uniform(0.7, 1.3))) * 100)
            if rng.random() < 0.5:
                cents = _round_to(cents, 1000)
            back = cents if rng.random() < 0.4 else round(cents * (1 - rng.uniform(0, 0.005)))
            t = d * DAY + rng.randint(8 * HOUR, 15 * HOUR)
            gap = rng.randint(5 * MINUTE, 8 * HOUR)
            inward = rng.random() < 0.6
            legs = [("in", cents), ("out", back)] if inward else [("out", cents), ("in", back)]
            for (direction, amount), at in zip(legs, (t, t + gap), strict=True):
                self.tx(at, b, b.account, accomplice, direction, amount, "bank_transfer", memo=memo)
            pairs.append(
                {
                    "date": self.dates[d].isoformat(),
                    "first": legs[0][0],
                    "amounts": [_money(cents), _money(back)],
                    "gap_minutes": round(gap / MINUTE),
                }
            )
            start, end = start or t, t + gap
        detail = {"counterparty": accomplice, "pairs": pairs}
        self.label(start, b, "wash_trading", end, detail)

    def inflation(self, b: _Borrower) -> None:
        """Inflows from new payers ramp up for 3–6 weeks before a loan application, then stop."""
        rng = self.rng
        apply_day = rng.randint(35, self.days - 7)
        ramp = rng.randint(21, min(42, apply_day - 14))
        ramp_start = (apply_day - ramp) * DAY
        boost = rng.uniform(1.0, 2.0)  # extra inflow of the last 30 days, in months of normal
        in_last_month = 1.0 - (max(0, ramp - 30) / ramp) ** 2
        total = b.monthly_inflow * boost / in_last_month
        size = min(150_000_00, max(10_000_00, round(total / rng.randint(6, 25))))
        amounts: list[int] = []
        while sum(amounts) < total or len(amounts) < 3:
            cents = min(150_000_00, max(10_000_00, round(size * rng.lognormvariate(0, 0.35))))
            amounts.append(_round_to(cents, 1000) if rng.random() < 0.6 else cents)
        transfers = len(amounts)
        sources = [f"corp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(3, 8))]
        sources = sources[:transfers]
        # The density grows linearly over the ramp: more and more money as the application nears.
        days = [min(apply_day - 1, ramp_start // DAY + int(ramp * math.sqrt(rng.random())))]
        days += [
            min(apply_day - 1, ramp_start // DAY + int(ramp * math.sqrt(rng.random())))
            for _ in range(transfers - 1)
        ]
        times = sorted(d * DAY + self.office_second(rng) for d in days)
        memo = rng.choice(_B2B_MEMOS)
        recycle = rng.random() < 0.5
        sinks = [f"supp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(1, 3))]
        added = 0
        used: list[str] = []
        for i, (t, cents) in enumerate(zip(times, amounts, strict=True)):
            # Payers join one by one as the ramp goes on; each pays at least once.
            unlocked = 1 + i * len(sources) // transfers
            source = sources[len(used)] if unlocked > len(used) else rng.choice(used)
            if source not in used:
                used.append(source)
            self.tx(t, b, b.account, source, "in", cents, "bank_transfer", memo=memo)
            added += cents
            if recycle and rng.random() < 0.6:
                back = t + rng.randint(2 * HOUR, 3 * DAY)
                out = round(cents * rng.uniform(0.85, 1.0))
                self.tx(back, b, b.account, rng.choice(sinks), "out", out, "bank_transfer")
        inflated = b.monthly_inflow * (1 + boost)
        asked = _round_to(inflated * rng.uniform(1.0, 3.0), 10_000)
        drawn = _round_to(asked * rng.uniform(0.6, 1.0), 1000)
        session_t = apply_day * DAY + _second(rng, _OFFICE_CUM)
        later = rng.choice((0, 0, 1, 2, 3))
        if later:
            (apply_t,) = self.session(b, session_t, [("loan_application", asked)])
            session_t = (apply_day + later) * DAY + _second(rng, _OFFICE_CUM)
            (draw_t,) = self.session(b, session_t, [("drawdown", drawn)])
        else:
            actions = [("loan_application", asked), ("drawdown", drawn)]
            apply_t, draw_t = self.session(b, session_t, actions)
        loan = self.loan(b, draw_t + MINUTE, [], 0)
        count = rng.choice((6, 12))
        loan.dues = _monthly_dues(_shift_months(self.dates[draw_t // DAY], 1), count)
        loan.amount_due = round(drawn * (1 + 0.012 * count) / count)
        b.loans.append(loan)
        self.tx(
            draw_t + 2 * MINUTE,
            b,
            b.account,
            LENDER_DISBURSE[0],
            "in",
            drawn,
            "bank_transfer",
            name=LENDER_DISBURSE[1],
            memo=loan.loan_id,
        )
        detail = {
            "counterparties": used,
            "transfers": transfers,
            "added_inflow": _money(added),
            "monthly_inflow": _money(b.monthly_inflow),
            "ramp_days": ramp,
            "application_ts": self.iso(apply_t),
            "application_amount": _money(asked),
            "drawdown_ts": self.iso(draw_t),
            "loan_id": loan.loan_id,
            "recycled": recycle,
        }
        self.label(times[0], b, "revenue_inflation", draw_t, detail)

    def machine(self, b: _Borrower) -> None:
        """A script pays in every 37–90 minutes, to the second, round or uniform sums."""
        rng = self.rng
        length = rng.randint(14, min(28, self.days - 7))
        first = rng.randint(7, self.days - length)
        interval = rng.randint(37 * MINUTE, 90 * MINUTE)
        jitter = rng.randint(1, 8)
        office = rng.random() < 0.7
        hours = (rng.randint(7, 9) * HOUR, rng.randint(20, 23) * HOUR) if office else (0, DAY)
        rounded = rng.random() < 0.5
        channel = next(c for c in b.sector.channels if c != "ecommerce")
        prefix, digits = ("cust", 8) if b.sector.consumer else ("corp", 6)
        payers = [
            f"{prefix}-{rng.randrange(10**digits):0{digits}d}" for _ in range(rng.randint(3, 6))
        ]
        per_day = (hours[1] - hours[0]) / interval
        mean = b.monthly_inflow * rng.uniform(1.0, 2.0) / 30 / per_day
        unit = 1000 if mean >= 5_000_00 else 100
        t = first * DAY + hours[0] + rng.randrange(interval)
        end = (first + length) * DAY
        count = 0
        last = t
        while t < end:
            second = t % DAY
            if hours[0] <= second < hours[1]:
                if rounded:
                    cents = _round_to(mean * rng.uniform(0.3, 1.7), unit)
                else:
                    cents = max(100, round(rng.uniform(0.2, 1.8) * mean))
                memo = None if b.sector.consumer else rng.choice(_B2B_MEMOS)
                self.tx(t, b, b.account, rng.choice(payers), "in", cents, channel, memo=memo)
                count += 1
                last = t
            t += interval + rng.randint(-jitter, jitter)
        detail = {
            "interval_seconds": interval,
            "jitter_seconds": jitter,
            "amounts": "round" if rounded else "uniform",
            "counterparties": payers,
            "channel": channel,
            "hours": [hours[0] // HOUR, hours[1] // HOUR],
            "transfers": count,
        }
        self.label(first * DAY + hours[0], b, "machine_generated", last, detail)

    def attacker_agent(self, not_this: str | None = None) -> str:
        """An attacker's phone is an ordinary phone: the agent of some borrower's phone."""
        ordinary = [b for b in self.borrowers if b.case is None] or self.borrowers
        agents = [b.devices[0].user_agent for b in ordinary]
        agents = [agent for agent in agents if agent != not_this] or [
            f"LendApp/{version} ({model})"
            for version in _APP_VERSIONS
            for model in _PHONE_MODELS
            if f"LendApp/{version} ({model})" != not_this
        ]
        return self.rng.choice(agents)

    def takeover(self, victim: _Borrower, replay: bool) -> None:
        """Failure burst from another city, success, payout change within 1 h, drawdown within 2 h.

        With ``replay`` the attacker spoofs the victim's own phone id, so the device is known;
        the address, city, app agent and hour (before dawn) are new. The drawdown follows a
        payout change, so it is held and never released: no disbursement, no schedule.
        """
        rng = self.rng
        city = rng.choice(self.away(victim))
        ip = _mobile_ip(rng, city)
        geo = self.geo(rng, city)
        day = rng.randint(7, self.days - 1)
        # An ordinary session in the week before: the victim has a history to stand out from.
        before = rng.randint(day - 7, day - 1)
        self.session(victim, before * DAY + _second(rng, _LOGIN_CUM), [])
        known = self.device_on(victim, before)  # the phone of that session
        if replay:
            device = _Device(known.id, self.attacker_agent(known.user_agent), True)
            start = day * DAY + rng.randint(0, 5 * HOUR)
            failures = rng.randint(4, 12)
            window = rng.randint(3 * MINUTE, 20 * MINUTE)
        else:
            device = self.device(rng, phone=True, agent=self.attacker_agent())
            start = day * DAY + rng.randint(0, 20 * HOUR)
            failures = rng.randint(6, 15)
            window = rng.randint(5 * MINUTE, 20 * MINUTE)
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
        detail = {
            "device_id": device.id,
            "ip": ip,
            "city": city.name,
            "failed_logins": failures,
            "success_ts": self.iso(success),
            "drawdown_amount": _money(cents),
        }
        if replay:
            detail["user_agent"] = device.user_agent
            detail["victim_user_agent"] = known.user_agent
        typology = "account_takeover_device_replay" if replay else "account_takeover"
        self.label(start, victim, typology, drawdown, detail)

    def impossible_travel(self, b: _Borrower) -> None:
        """A login at home, then within the hour a login from a city over 1,000 km away."""
        rng = self.rng
        far = [c for c in _CITIES if _km(b.city, c) > 1000]
        city = rng.choice(far)
        day = rng.randint(7, self.days - 1)
        home_t = day * DAY + rng.randint(7 * HOUR, 21 * HOUR)
        self.session(b, home_t, [])
        remote_t = home_t + rng.randint(10 * MINUTE, 55 * MINUTE)
        same = rng.random() < 0.4
        device = self.device_on(b, day) if same else self.device(rng, phone=True)
        if not same:
            device = replace(device, user_agent=self.attacker_agent())
        ip = _mobile_ip(rng, city) if rng.random() < 0.5 else rng.choice(self.cgnat[city.name])
        geo = self.geo(rng, city)
        self.login(remote_t, b, "login", device, ip, geo)
        if rng.random() < 0.5:
            self.login(remote_t + rng.randint(MINUTE, 30 * MINUTE), b, "logout", device, ip, geo)
        detail = {
            "home_city": b.city.name,
            "city": city.name,
            "distance_km": round(_km(b.city, city)),
            "minutes": round((remote_t - home_t) / MINUTE),
            "same_device": same,
            "device_id": device.id,
            "ip": ip,
        }
        self.label(home_t, b, "impossible_travel", remote_t, detail)

    def stuffing(self, number: int, targets: list[_Borrower]) -> None:
        """One address tries leaked passwords on 20–60 borrowers, once or twice each."""
        rng = self.rng
        city = rng.choice(_CITIES)
        ip = rng.choice(self.cgnat[city.name]) if rng.random() < 0.3 else _mobile_ip(rng, city)
        burst = rng.random() < 0.5
        span = rng.randint(5 * MINUTE, 29 * MINUTE) if burst else rng.randint(6 * HOUR, 20 * HOUR)
        start = rng.randint(1, self.days - 1) * DAY + rng.randint(0, 20 * HOUR)
        start = min(start, self.end - span - 10 * MINUTE)
        rotating = rng.random() < 0.6
        agent = self.attacker_agent()
        fixed = self.device(rng, phone=True, agent=agent)
        winners = set(rng.sample(range(len(targets)), rng.choice((0, 0, 1, 1, 2))))
        order = rng.sample(targets, len(targets))
        times = sorted(start + rng.randint(0, span) for _ in order)
        mode = "burst" if burst else "slow"
        for i, (b, t) in enumerate(zip(order, times, strict=True)):
            geo = self.geo(rng, city)
            attempts = rng.choice((1, 1, 2))
            first = t
            for k in range(attempts):
                device = self.device(rng, True, agent) if rotating else fixed
                success = i in winners and k == attempts - 1
                self.login(t, b, "login", device, ip, geo, success=success)
                if k < attempts - 1:
                    t += rng.randint(3, 40) if burst else rng.randint(20, 600)
            detail = {
                "ip": ip,
                "mode": mode,
                "campaign": f"stuffing-{number:02d}",
                "targets": len(targets),
                "attempts": attempts,
                "success": i in winners,
                "campaign_start": self.iso(times[0]),
                "campaign_end": self.iso(times[-1]),
            }
            self.label(first, b, "credential_stuffing", t, detail)

    def device_ring(self, number: int, members: list[_Borrower]) -> None:
        """An agent applies for loans in 3–6 borrowers' names from one device over 1–10 days."""
        rng = self.rng
        phone = rng.random() < 0.5
        device = self.device(rng, phone=phone, agent=self.attacker_agent() if phone else None)
        city = rng.choice([m.city for m in members])
        ip = f"{city.broadband}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        span = rng.randint(1, min(10, self.days - 7))
        first = rng.randint(7, self.days - span)
        member_ids = [m.id for m in members]
        for b in members:
            t = (first + rng.randrange(span)) * DAY + _second(rng, _OFFICE_CUM)
            geo = self.geo(rng, city)
            self.login(t, b, "login", device, ip, geo)
            asked = _round_to(b.monthly_inflow * rng.uniform(0.5, 2.0), 10_000)
            end = t + rng.randint(3 * MINUTE, 25 * MINUTE)
            self.login(end, b, "loan_application", device, ip, geo, amount=asked)
            if rng.random() < 0.5:
                end += rng.randint(MINUTE, 10 * MINUTE)
                self.login(end, b, "logout", device, ip, geo)
            detail = {
                "device_id": device.id,
                "ring": f"device-ring-{number:02d}",
                "members": member_ids,
                "ip": ip,
                "city": city.name,
                "application_amount": _money(asked),
            }
            self.label(t, b, "device_ring", end, detail)


def simulate_stream(config: SimulationConfig) -> tuple[list[Label], Iterator[dict[str, Any]]]:
    """Plan the whole period, then generate it day by day: the labels, and a lazy event stream.

    Memory stays about two days of events whatever the length; the records are those of
    :func:`simulate` in the same order, sorted by (instant, topic, event_id).
    """
    world = _World(config)
    world.plan()
    return world.sorted_labels(), world.stream()


def simulate(config: SimulationConfig) -> Simulation:
    """Generate the whole period; the same config always gives the same records and labels."""
    labels, records = simulate_stream(config)
    # Records are acyclic: the cyclic collector would only rescan the growing list, ~40 % extra.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return Simulation(list(records), labels)
    finally:
        if collecting:
            gc.enable()


def write_jsonl(
    source: Simulation | SimulationConfig | tuple[list[Label], Iterable[dict[str, Any]]],
    events_path: Path,
    labels_path: Path | None,
) -> int:
    """Write one JSON object per line, in the simulation's order, so files replay and diff.

    Given a config, the events are generated and written day by day, never all in memory.
    Returns the number of events written.
    """
    if isinstance(source, SimulationConfig):
        labels, records = simulate_stream(source)
    elif isinstance(source, Simulation):
        labels, records = source.labels, iter(source.records)
    else:
        labels, records = source[0], iter(source[1])
    events_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with events_path.open("wb") as out:
        for record in records:
            out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            written += 1
    if labels_path is not None:
        labels_path.parent.mkdir(parents=True, exist_ok=True)
        with labels_path.open("wb") as out:
            out.writelines(
                orjson.dumps(label, option=orjson.OPT_APPEND_NEWLINE) for label in labels
            )
    return written


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read a file written by :func:`write_jsonl` back, one object per line."""
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
