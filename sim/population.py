"""The population: sectors, cities, devices, and the borrowers with their traits and loans."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sim.draws import cum, hours
from sim.world import DAY, World, round_to

#: Mobile carriers' shared NAT addresses per city: many borrowers leave through each one.
CGNAT_PER_CITY = 2
#: Co-working: the chance a borrower rents a desk in an office whose address it shares.
OFFICE_SHARE = 0.12


@dataclass(frozen=True)
class Sector:
    """How one sector earns and spends: rhythm, ticket sizes, counterparties.

    ``share`` is the sector's part of the population (the sector mix).
    """

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


SECTORS = (
    Sector(
        name="ecommerce",
        share=0.25,
        inflows_per_day=12,
        weekend=1.4,
        ticket=180,
        sigma=0.8,
        channels=("ecommerce", "wallet"),
        channel_cum=cum((0.6, 0.4)),
        hours_cum=hours("1.5 1 .6 .3 .2 .2 .4 .8 1.5 2.5 3 3 3 3 3 3 3 3.5 4 5 6 6.5 5 3"),
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
    Sector(
        name="restaurant",
        share=0.25,
        inflows_per_day=22,
        weekend=1.2,
        ticket=65,
        sigma=0.6,
        channels=("pos", "wallet"),
        channel_cum=cum((0.35, 0.65)),
        hours_cum=hours("0 0 0 0 0 0 .2 .5 1 1 2 6 9 6 2 1 1.5 5 8 7 3 1.5 .8 .3"),
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
    Sector(
        name="retail",
        share=0.20,
        inflows_per_day=14,
        weekend=1.3,
        ticket=90,
        sigma=0.9,
        channels=("pos", "wallet"),
        channel_cum=cum((0.45, 0.55)),
        hours_cum=hours("0 0 0 0 0 0 0 .3 1 3 4 5 5 4 4 4 4.5 5.5 6 5 4 2 .5 0"),
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
    Sector(
        name="manufacturing",
        share=0.15,
        inflows_per_day=2.5,
        weekend=0.1,
        ticket=25_000,
        sigma=0.7,
        channels=("bank_transfer",),
        channel_cum=(1.0,),
        hours_cum=hours("0 0 0 0 0 0 0 .2 1 3 4 4 2 2 4 4 3 2 .5 .1 0 0 0 0"),
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
    Sector(
        name="logistics",
        share=0.15,
        inflows_per_day=4.5,
        weekend=0.3,
        ticket=3_500,
        sigma=0.7,
        channels=("bank_transfer", "wallet"),
        channel_cum=cum((0.7, 0.3)),
        hours_cum=hours("0 0 0 0 0 0 .5 2 3 4 4 3 2 3 4 4 3 2 1 .5 .2 0 0 0"),
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

PLATFORMS = (
    ("plat-tmall-settle", "Tmall settlement"),
    ("plat-jd-settle", "JD settlement"),
    ("plat-pdd-settle", "Pinduoduo settlement"),
    ("plat-douyin-settle", "Douyin settlement"),
)
# Card acquirers pay a merchant's card receipts of the day before in one batch, net of fees.
ACQUIRERS = (
    ("acq-lakala", "Lakala settlement"),
    ("acq-unionpay", "UnionPay merchant settlement"),
    ("acq-sumpay", "Sumpay settlement"),
)


@dataclass(frozen=True)
class City:
    """A city: where its people are, and the first octets of its home and mobile addresses."""

    name: str
    lat: float
    lon: float
    broadband: str  # first octets of home broadband addresses
    mobile: str  # first octets of the mobile carrier's addresses


CITIES = (
    City("Shanghai", 31.2304, 121.4737, "101.80", "117.136"),
    City("Beijing", 39.9042, 116.4074, "123.112", "111.196"),
    City("Shenzhen", 22.5431, 114.0579, "113.88", "120.229"),
    City("Guangzhou", 23.1291, 113.2644, "14.215", "183.232"),
    City("Hangzhou", 30.2741, 120.1551, "115.236", "39.173"),
    City("Chengdu", 30.5728, 104.0668, "171.88", "223.87"),
    City("Wuhan", 30.5928, 114.3055, "59.172", "111.47"),
    City("Xi'an", 34.3416, 108.9398, "113.140", "117.32"),
    City("Nanjing", 32.0603, 118.7969, "180.110", "112.2"),
    City("Suzhou", 31.2990, 120.5853, "58.208", "112.80"),
    City("Chongqing", 29.4316, 106.9123, "222.178", "183.230"),
    City("Xiamen", 24.4798, 118.0894, "117.28", "27.154"),
)


def km(a: City, b: City) -> float:
    """Great-circle distance between two city centres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


APP_VERSIONS = ("5.0.2", "5.1.9", "5.2.4", "5.3.0", "5.3.1")
APP_VERSION_CUM = cum((5, 10, 25, 40, 20))
PHONE_MODELS = (
    "iPhone; iOS 17.4",
    "iPhone; iOS 18.1",
    "Android 14; Xiaomi 14",
    "Android 13; HUAWEI Mate 50",
    "Android 14; OPPO Find X7",
    "Android 12; vivo X80",
    "Android 11; Redmi Note 9",
    "Android 10; SM-G960F",
)
DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
)


#: Share of days a borrower opens the app: heavy users daily, light ones once or twice a week.
ACTIVITY = (0.95, 0.7, 0.4, 0.15)
ACTIVITY_CUM = cum((35, 30, 20, 15))


#: Memos people type on bank transfers between businesses; genuine and forged flows share them.
B2B_MEMOS = (
    None,
    None,
    None,
    "payment for goods",
    "purchase",
    "invoice",
    "deposit",
    "service fee",
)


@dataclass(frozen=True)
class Device:
    """A phone or a computer: its id and the user agent it sends."""

    id: str
    user_agent: str
    phone: bool


@dataclass
class Loan:
    """A loan's schedule, and which installments its borrower will not pay as usual."""

    loan_id: str
    booked: int  # seconds since start: when the schedule was published
    dues: list[date]
    amount_due: int  # cents
    missed_from: int | None = None  # installments from this one on are not paid
    #: Explicit payments of some installments, (day, cents) each, instead of the usual habit.
    plan: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


@dataclass(eq=False)
class Borrower:
    """A borrower's fixed traits and the benign or injected episodes planned for it."""

    id: str
    number: str
    sector: Sector
    rng: random.Random
    city: City
    home_ip: str  # home or office broadband; an office address is shared by its tenants
    devices: list[Device]
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
    loans: list[Loan] = field(default_factory=list)
    pay_style: str = "normal"  # "normal" | "late" (1-2 days, within grace) | "early"
    # start day, bottom day, floor share of normal, day a recovery starts (None: no recovery)
    decline: tuple[int, int, float, int | None] | None = None
    quiet_from: int | None = None  # no sessions from this day on
    dormant: tuple[int, int] | None = None  # no sessions on these days (a holiday)
    partner: Borrower | None = None  # another borrower it buys from (benign link)
    trader: tuple[str, int] | None = None  # partner it buys from and sells to, ticket cents
    # New clients of a genuine growth: from day, client, ticket cents, chance to pay on a weekday
    growth: list[tuple[int, str, int, float]] = field(default_factory=list)
    growth_span: tuple[int, int, float] | None = None  # first day, full day, extra share
    # A genuine growth's new supplier: the extra stock it needs is bought there, not from
    # the usual suppliers (None: from them).
    growth_supplier: str | None = None
    new_phone: Device | None = None
    phone_change_day: int | None = None
    app_update: tuple[int, str] | None = None  # day, new user agent of the phone
    forgot_password_day: int | None = None
    legs: list[tuple[int, int, City]] = field(default_factory=list)  # depart, arrive, to
    forced: dict[int, list[int]] = field(default_factory=dict)  # day -> session times
    actions: dict[int, list[tuple[str, int]]] = field(default_factory=dict)  # day -> actions
    shared: Device | None = None  # a family member's or accountant's device
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
    wholesale: float | None = None  # a wholesaler's cost of stock against the sale
    savings: str | None = None  # the owner's savings elsewhere, where the takings are swept


def mobile_ip(rng: random.Random, city: City) -> str:
    """An address of the city's mobile carrier, one of many."""
    return f"{city.mobile}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def broadband_ip(rng: random.Random, city: City) -> str:
    """A home or office broadband address in the city."""
    return f"{city.broadband}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def phone_agent(rng: random.Random, version: str | None = None) -> str:
    """The app's user agent on some phone: a version by its market share, a phone model."""
    version = version or rng.choices(APP_VERSIONS, cum_weights=APP_VERSION_CUM)[0]
    return f"LendApp/{version} ({rng.choice(PHONE_MODELS)})"


def upgraded(agent: str) -> str | None:
    """The user agent after an app update: same phone, newer app version."""
    if not agent.startswith("LendApp/"):
        return None
    version, model = agent.removeprefix("LendApp/").split(" ", 1)
    newer = APP_VERSIONS[APP_VERSIONS.index(version) + 1 :]
    return f"LendApp/{newer[-1]} {model}" if newer else None


def new_device(world: World, rng: random.Random, phone: bool, agent: str | None = None) -> Device:
    """A device never seen before: a phone with the app, or a computer with a browser."""
    device_id = world.new_device_id(rng)
    if agent is None:
        agent = phone_agent(rng) if phone else rng.choice(DESKTOP_AGENTS)
    return Device(device_id, agent, phone)


def geo(rng: random.Random, city: City) -> dict[str, Any]:
    """Where in the city a login comes from: its centre, give or take a few kilometres."""
    return {
        "lat": round(city.lat + rng.gauss(0, 0.03), 4),
        "lon": round(city.lon + rng.gauss(0, 0.03), 4),
        "city": city.name,
    }


def device_on(b: Borrower, d: int) -> Device:
    """The borrower's main phone on day ``d``, as the benign sessions will use it."""
    device = b.devices[0]
    if b.new_phone is not None and b.phone_change_day is not None and d >= b.phone_change_day:
        device = b.new_phone
    if b.app_update is not None and d >= b.app_update[0]:
        device = replace(device, user_agent=b.app_update[1])
    return device


def away(b: Borrower) -> list[City]:
    """Every city but the borrower's own."""
    return [c for c in CITIES if c is not b.city]


def free_of(*cases: str) -> Callable[[Borrower], bool]:
    """Borrowers carrying none of these typologies: a trap must not blur such a case."""
    return lambda b: b.case not in cases


def same_city(city: City) -> Callable[[Borrower], bool]:
    return lambda b: b.city is city


# --- drawing the population -------------------------------------------------------------------


def populate(world: World) -> None:
    """Draw every borrower, the carriers' shared addresses, and who shares an office."""
    rng = world.rng
    world.borrowers = [borrower(world, i, s) for i, s in enumerate(sectors(world), start=1)]
    world.cgnat = {c.name: [mobile_ip(rng, c) for _ in range(CGNAT_PER_CITY)] for c in CITIES}
    offices(world)


def sectors(world: World) -> list[Sector]:
    """Sector quotas by largest remainder, shuffled: every sector shows up in small runs too."""
    n = world.config.borrowers
    mix = world.config.profile.sector_mix
    shares = [s.share for s in SECTORS] if mix is None else _mix(mix)
    exact = [share * n for share in shares]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(SECTORS)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    sectors = [s for s, count in zip(SECTORS, counts, strict=True) for _ in range(count)]
    world.rng.shuffle(sectors)
    return sectors


def _mix(mix: tuple[tuple[str, float], ...]) -> list[float]:
    """A profile's sector mix as shares in the order of SECTORS, normalised to sum to 1."""
    given = dict(mix)
    unknown = sorted(set(given) - {s.name for s in SECTORS})
    if unknown:
        raise ValueError(f"unknown sectors {unknown} in the profile's sector mix")
    total = sum(given.values())
    if total <= 0 or min(given.values()) < 0:
        raise ValueError("a sector mix needs non-negative shares, not all 0")
    return [given.get(s.name, 0.0) / total for s in SECTORS]


def borrower(world: World, index: int, sector: Sector) -> Borrower:
    """One borrower of the sector, with its own random stream: its traits and its habits."""
    rng = random.Random(world.rng.getrandbits(64))
    city = rng.choice(CITIES)
    devices = [new_device(world, rng, phone=True)]
    if rng.random() < 0.5:
        devices.append(new_device(world, rng, phone=False))
    profile = world.config.profile
    median = profile.size_median
    size = rng.lognormvariate(math.log(median), profile.size_sigma)
    count_scale = min(1.6 * median, max(0.5 * median, size))
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
        platforms = rng.sample(PLATFORMS, rng.randint(1, 3))
    number = f"{index:05d}"
    # The keyword arguments are drawn in this order: keep it, or every run changes.
    return Borrower(
        id=f"b-{number}",
        number=number,
        sector=sector,
        rng=rng,
        city=city,
        home_ip=broadband_ip(rng, city),
        devices=devices,
        activity=rng.choices(ACTIVITY, cum_weights=ACTIVITY_CUM)[0],
        count_scale=count_scale,
        log_ticket=math.log(sector.ticket * ticket_scale),
        regulars=regulars,
        clients=clients,
        suppliers=[f"supp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(2, 5))],
        platforms=platforms,
        monthly_inflow=round(monthly),
        supplier_ticket=0.55 * monthly / 100 / supplier_payments,
        landlord=f"land-{rng.randrange(10**6):06d}",
        rent=round_to(monthly * rng.uniform(0.05, 0.10), 1000),
        rent_dom=rng.randint(1, 5),
        payroll=round_to(monthly * rng.uniform(0.12, 0.25), 1000, minimum_units=2),
        payroll_dom=rng.choice((10, 15, 25)),
        account=f"acct-{number}-1",
        second_account=f"acct-{number}-2",
    )


def offices(world: World) -> None:
    """Co-working tenants share one office address; some of them only a handful."""
    rng = world.rng
    by_city: dict[str, list[Borrower]] = defaultdict(list)
    for b in world.borrowers:
        by_city[b.city.name].append(b)
    for city in CITIES:
        tenants = [b for b in by_city[city.name] if rng.random() < OFFICE_SHARE]
        while len(tenants) >= 2:
            size = min(len(tenants), rng.randint(3, 10))
            ip = broadband_ip(rng, city)
            for b in tenants[:size]:
                b.home_ip = ip
            del tenants[:size]
