"""Machine-made flows: inflows too round, too regular, too far from Benford's law, or from
payers that take turns on one clock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors.base import FALSIFIED_FLOW, Detector, Output
from detectors.index import Found
from detectors.scenarios import at, inputs, transaction
from detectors.state import BorrowerState
from detectors.tunables import tunable
from topics.names import Source
from topics.records import Transaction

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["BENFORD", "MachineFlowDetector", "MachineFlowThresholds"]


@dataclass(frozen=True, slots=True)
class MachineFlowThresholds:
    """Tunables of :class:`MachineFlowDetector`.

    Benford's law is tested on the amounts that are not round: round sums are the round test's
    business, and a few denominations (top-ups of 100, 200, 500) would otherwise fail both
    tests for one reason. Their first-digit mean absolute deviation (MAD) is compared with two
    allowances combined in quadrature (independent sources of deviation). Sampling noise: the
    MAD of amounts drawn from Benford's law falls as 1/sqrt(n); at 60 amounts its 99.9th
    percentile is 0.059 (simulated), hence ``BENFORD_NOISE_AT_60`` scaled by
    sqrt(60 / effective sample size). And ``min_benford_mad``, what a real business shows for
    want of spread or because of its price points: Nigrini's 0.015 "nonconformity" is meant
    for thousands of accounting amounts, while one merchant's takings commonly sit at 0.05-0.13
    (simulated SME flows). The bound is 0.125 at 40 amounts and 0.109 at the 119 of a full
    decayed window: only crude scripts (digits confined to a few values across orders of
    magnitude) fail; uniform amounts (about 0.06) pass, as real flows do. The spread gate
    keeps amounts within about one order of magnitude (a daily settlement) out of the test,
    to which the law does not apply, real or not.

    Payers on the clock are in no fixed order when, at every lag k up to PAYER_LAGS, at most
    ``max_payer_repeat_share`` of the inflows on the clock have the payer of the one k before
    them on it. A script that picks one of n accounts at random repeats each lag about 1/n of
    the time (0.33 with three); settlement schedules repeat one lag nearly always (one payer:
    lag 1; an acquirer at 02:00 and a platform at 14:00: lag 2). Simulated, after the first
    ``min_payer_samples``: scripts reach 0.1-0.38 (median 0.2), settlement clocks never go
    below 0.79. Sellers on several platforms that settle at the same hours, one or another
    with nothing to pay on some ticks, can look unordered too, but a share of their inflows
    on the clock come within minutes of another (never below 0.067, simulated), where a
    script's come one a tick (at most 0.005, crossed by chance customers):
    ``max_batched_share`` sits between.
    """

    #: Inflows smaller than this (major units) are left out of every statistic ...
    min_amount: float = tunable(
        100.0, 0.0, 1000000.0, "inflows smaller than this are left out (major units)"
    )
    #: ... unless they are at least this share of the borrower's typical inflow (the decayed
    #: geometric mean of all its inflows; 0: ``min_amount`` alone): in a shop whose customers
    #: pay tens of yuan, a script paying tens of yuan is the business's scale, not petty noise.
    min_share_of_typical: float = tunable(
        0.25, 0.0, 1.0, "share of the borrower's typical inflow that is counted under min_amount"
    )
    #: Memory of the statistics, in inflows: a weight shrinks by 1 - 1/window per later inflow.
    window: int = tunable(60, 10, 1000, "memory of the statistics, in inflows")
    #: No verdict before this many inflows of at least ``min_amount`` have been seen.
    min_samples: int = tunable(40, 5, 1000, "inflows seen before any verdict")
    #: An amount is round when it is a whole multiple of this (major units).
    round_unit: float = tunable(
        100.0, 1.0, 100000.0, "an amount is round when a whole multiple of this"
    )
    #: Round signal: the decayed share of round inflows is above this share (0..1).
    max_round_share: float = tunable(
        0.5, 0.0, 1.0, "decayed share of round inflows above which the round signal holds"
    )
    #: Regular signal: coefficient of variation of the times between inflows is at most this ...
    max_interval_cv: float = tunable(
        0.15, 0.0, 2.0, "variation of the times between inflows at or below which they are regular"
    )
    #: ... or at least this share of inflows come one fixed period (+-45 s) after an earlier one.
    min_clock_share: float = tunable(
        0.3, 0.0, 1.0, "share of inflows one fixed period after another that is regular"
    )
    #: ... or at least this share come within CLOCK_TIGHT (15 s) of the period to the second
    #: (or two or three times it) after an earlier one: a script among many customers, who
    #: land on the wider slack by chance.
    min_tight_clock_share: float = tunable(
        0.2, 0.0, 1.0, "share of inflows a period to the second after another that is regular"
    )
    #: Benford signal: first-digit mean absolute deviation at least this (and the noise bound).
    min_benford_mad: float = tunable(
        0.1, 0.0, 1.0, "first-digit deviation from Benford's law that signals"
    )
    #: Benford is tested only when log10(amount) has at least this standard deviation (decades).
    min_benford_spread: float = tunable(
        0.3, 0.0, 5.0, "decades of spread needed before Benford is tested"
    )
    #: Rotating-payers signal (counted only with the clock): for every lag k up to PAYER_LAGS,
    #: at most this share of the inflows on the clock have the payer of the one k before ...
    max_payer_repeat_share: float = tunable(
        0.5, 0.0, 1.0, "payer repeat share at every lag at most which payers rotate"
    )
    #: ... judged once this many inflows on the clock have been compared with their PAYER_LAGS
    #: predecessors on it ...
    min_payer_samples: int = tunable(
        10, 1, 1000, "inflows on the clock compared before rotation is judged"
    )
    #: ... and at most this share come within CLOCK_MIN (5 min) of another on the clock.
    max_batched_share: float = tunable(
        0.02, 0.0, 1.0, "share of clock inflows within 5 minutes of another, at most"
    )
    #: Alert when at least this many of the four signals hold.
    min_signals: int = tunable(2, 1, 4, "signals of the four that must hold for an alert")


#: Benford's law: the share of first digits 1..9 in amounts spread over orders of magnitude.
BENFORD = tuple(math.log10(1.0 + 1.0 / digit) for digit in range(1, 10))
#: First-digit MAD that Benford-true samples of 60 amounts exceed once in a thousand
#: (simulated); the noise allowance at n amounts is this times sqrt(60 / n).
BENFORD_NOISE_AT_60 = 0.06
#: Event ids kept as evidence: the latest inflows that went into the statistics.
EVIDENCE_KEPT = 5
#: The sample count stops here (only ``>= min_samples`` matters); keeps the slot small.
MAX_COUNT = 1_000_000
#: The weight of the next inflow is brought back to 1 (every sum divided by it) above this.
RESCALE_AT = 1e30
#: Clock search: the gap from each inflow to the previous one, between CLOCK_MIN and CLOCK_MAX
#: seconds, goes to a decayed histogram of CLOCK_BUCKET-second buckets (CLOCK_BUCKETS kept);
#: the bucket that counts most with its neighbour is the period. An inflow is on the clock
#: when its gap to one of the previous CLOCK_DEPTH inflows falls on the period (or a few, see
#: CLOCK_MULTIPLES), give or take a bucket: a script keeps its period even when real
#: customers pay in between.
CLOCK_DEPTH = 6
#: A gap of up to this many periods is on the clock too: a script's transfer under
#: ``min_amount`` (left out of every statistic) or one that failed skips a tick, and the next
#: one keeps the period. Chance gets as many windows (see CLOCK_OVER_CHANCE).
CLOCK_MULTIPLES = 3
CLOCK_MIN = 300
CLOCK_MAX = 93_600
CLOCK_BUCKET = 30
CLOCK_BUCKETS = 6
#: A gap is on the period when within this many seconds of it (a bucket and a half): the
#: histogram places the period to a bucket only.
CLOCK_SLACK = 1.5 * CLOCK_BUCKET
#: The period to the second: gaps of one period move it by 1/PERIOD_MEMORY of their distance,
#: and a gap within CLOCK_TIGHT seconds of it (or of two or three times it) keeps time. A
#: script fires within seconds of its schedule; among a busy shop's customers, who pay on the
#: slack's 90 seconds by chance several times an hour, only the tight window tells it.
PERIOD_MEMORY = 8
CLOCK_TIGHT = 15
#: What chance gives on the tight window is counted beside it, at this many seconds from the
#: period (beyond a script's jitter, within the customers' own rhythm).
CLOCK_BESIDE = 45
#: The clock to the second must hold this many times what lands beside it: a second look at
#: the same inflows, after the slack failed, asks for more than the first.
TIGHT_OVER_CHANCE = 5.0
#: The clock share must also be this many times what chance gives at the borrower's inflow
#: rate (three buckets' worth of arrivals).
CLOCK_OVER_CHANCE = 4.0
#: Payers on the clock: the latest PAYER_LAGS payers of inflows on the clock are kept, and for
#: each lag k up to it, how often an inflow on the clock has the payer of the one k before.
#: Settlement schedules repeat in a fixed order (one payer: lag 1; an acquirer at 02:00 and a
#: platform at 14:00: lag 2; ...); four covers the schedules a merchant plausibly has.
PAYER_LAGS = 4


def _empty() -> dict[str, Any]:
    # Decayed sums are kept unnormalised: each new inflow weighs ``g``, which grows by 1/alpha,
    # instead of every sum shrinking by alpha. Only ratios of sums are used, so the common
    # scale never matters; it is brought back to 1 before it could overflow.
    return {
        "n": 0,  # inflows seen (capped)
        "g": 1.0,  # weight of the next inflow
        "w": 0.0,  # decayed weight of the inflows
        "r": 0.0,  # decayed weight of the round ones
        # Benford is tested on the other ones only (see MachineFlowThresholds):
        "b": 0.0,  # decayed weight of the inflows that are not round
        "b2": 0.0,  # ... and of their squared weights: effective sample size is b * b / b2
        "d": [0.0] * 9,  # ... by first digit
        "l1": 0.0,  # decayed sum of their log10(amount)
        "l2": 0.0,  # ... and of its square
        "t": None,  # event time of the latest inflow (arrival order)
        "iw": 0.0,  # decayed weight of the intervals between inflows
        "i1": 0.0,  # decayed sum of the intervals (seconds)
        "i2": 0.0,  # ... and of their squares
        "ct": [],  # times of the latest inflows, whole seconds (clock search)
        "hk": [],  # CLOCK_BUCKET buckets of the gaps between inflows ...
        "hv": [],  # ... and their decayed counts
        "tb": -1,  # the bucket of the period (see _period_bucket), -1 while none
        "tc": 0.0,  # ... and its merged count
        "ch": 0.0,  # decayed weight of the inflows on the clock
        "pt": None,  # the period to the tenth of a second (see PERIOD_MEMORY), None while none
        "tt": 0.0,  # decayed weight of the inflows on it within CLOCK_TIGHT (version 6 on)
        "tx": 0.0,  # ... and beside it (see _against_period; version 6 on)
        "lc": None,  # time of the latest inflow on the clock, whole seconds
        "pp": [],  # payers of the latest PAYER_LAGS inflows on the clock, latest last
        "pc": 0.0,  # decayed weight of the inflows on the clock that found "pp" full ...
        "pn": 0,  # ... and their number (capped)
        "pm": [0.0] * PAYER_LAGS,  # ... of them, those with the payer of the one 1, 2, ...
        # before them on the clock
        "bt": 0.0,  # decayed weight of the inflows on the clock within CLOCK_MIN of the last
        "ev": [],  # latest event ids
        "wk": "",  # ISO week already alerted
        "tl": None,  # decayed mean log10 of every inflow, whatever its size (typical inflow)
    }


def _upgrade(memory: dict[str, Any]) -> None:
    """Fill in what a slot written by version 1 lacks: payers are learnt from now on."""
    memory["lc"] = None
    memory["pp"] = []
    memory["pc"] = 0.0
    memory["pn"] = 0
    memory["pm"] = [0.0] * PAYER_LAGS
    memory["bt"] = 0.0


def _upgrade_to_6(memory: dict[str, Any]) -> None:
    """Fill in what a slot written before version 6 lacks: the period to the second, and the
    inflows that keep it, are learnt from now on."""
    memory["pt"] = None
    memory["tt"] = 0.0
    memory["tx"] = 0.0


@dataclass(frozen=True, slots=True)
class _Signal:
    """A signal that holds: its reason (message key and values), and how far past its
    threshold the measure is (0..1). Its reason is only built for an alert."""

    key: str
    observed: float
    threshold: float
    strength: float
    slots: dict[str, Any]


def iso_week(epoch: float) -> str:
    """``2024-W09`` for an event time.

    >>> iso_week(datetime(2024, 3, 1, tzinfo=UTC).timestamp())
    '2024-W09'
    """
    year, week, _ = datetime.fromtimestamp(epoch, UTC).isocalendar()
    return f"{year}-W{week:02d}"


class MachineFlowDetector(Detector):
    """Flags inflows generated by a script: at least two of round amounts, clockwork
    arrivals, first digits far from Benford's law and payers that take turns on the clock,
    over the borrower's recent inflows.

    Statistics are exponentially decayed over about ``window`` inflows, so the memory of a
    borrower is a few numbers whatever its volume. Arrivals are clockwork when the intervals
    barely vary, or, since real customers keep paying between a script's transfers and a
    script may pause at night, when many inflows come one fixed period (to about 45 s) after
    an earlier one. One signal alone is never enough: a daily card settlement or a platform's
    batches are regular but neither round nor (their amounts being close together) testable
    against Benford; rent, payroll and invoices are round but irregular, few, or outflows.

    In a busy shop the slack of a bucket and a half (90 seconds) fails: customers land on any
    period's slack several times an hour, as often as a script that is a quarter of the
    inflows ticks. The period is then also placed to the second (a mean of the gaps on it
    that the ticks pull to their own), and the clock holds when ``min_tight_clock_share`` of
    the inflows come within CLOCK_TIGHT (15 s) of it, TIGHT_OVER_CHANCE times what lands in
    windows as wide just beside it: chance measured on the borrower's own rushes and quiet
    hours, not guessed from its average rate, and asked for more than on the slack, being a
    second look at the same inflows. In such a busy shop the clock's ticks are only the
    inflows that keep time, so that the customers on the slack do not pass for payers taking
    turns.

    Whom the clock's ticks come from is the fourth signal, and it only ever counts with the
    clock. Independent customers do not keep a common clock; a settlement schedule does, but
    in a fixed order: one payer every period, or several each at its own hour (an acquirer at
    02:00 and a platform at 14:00 alternate), and platforms that settle at the same hours pay
    within minutes of each other. A script that spreads its transfers over a few accounts, to
    pass them off as customers, pays one transfer a tick from an account picked in no fixed
    order. So the payers rotate when no lag up to PAYER_LAGS repeats the payer of the inflow
    that many before on the clock for most inflows on it, and hardly any inflow on the clock
    comes within minutes of another.

    The inflow that would raise a new week's alert must itself be round or on a live clock
    (the previous inflow on the clock at most CLOCK_MAX before it), so that a script that
    stopped does not keep alerting from decayed statistics: a quiet borrower keeps them for
    weeks, and once the script stops, chance hits on its period come days apart.

    >>> from decimal import Decimal
    >>> from topics.records import Transaction
    >>> detector = MachineFlowDetector(MachineFlowThresholds(min_samples=3))
    >>> state = BorrowerState(borrower_id="b")
    >>> findings = [
    ...     detector.on_transaction(
    ...         Transaction(event_id=f"e{i}", ts=datetime.fromtimestamp(i * 3600.0, UTC),
    ...                     borrower_id="b", account_id="a", counterparty_id=f"x{i}",
    ...                     direction="in", amount=Decimal(20000 + 10000 * (i % 3))),
    ...         state, ())
    ...     for i in range(4)
    ... ]
    >>> [[r.code for r in f.reasons] for out in findings for f in out]
    [['round_amounts', 'regular_intervals']]
    """

    name = "machine_flow"
    category = FALSIFIED_FLOW
    version = "6"
    section = "machine_flow"
    thresholds_type = MachineFlowThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """45 round sums from three payers in turn, one every three hours, from 2 March."""
        return inputs(
            Source.TRANSACTIONS,
            [
                transaction(
                    f"m-{i}",
                    "m-1",
                    "ma-1",
                    f"m-src-{i % 3}",
                    ("20000", "30000", "50000")[i % 3],
                    at(days=1, hours=3 * i),
                    "in",
                )
                for i in range(45)
            ],
        )

    messages = {
        "round_amounts": "{share:.0%} of recent inflows (weighted) are multiples of {unit:g}",
        "regular_intervals": "inflows arrive every {gap} with a coefficient of variation of "
        "{cv:.3f}",
        "regular_intervals/clock": "{share:.0%} of recent inflows came {period} after an earlier "
        "one (or two or three times that), give or take {slack:g} s (chance would give "
        "{chance:.1%})",
        "rotating_payers": "inflows on the {period} clock come from payers in no fixed order, "
        "one at a time: at most {repeat:.0%} have the payer of the one {lag} before them on the "
        "clock (a settlement schedule repeats its payers in order), and {batched:.0%} came "
        "within {minutes:g} min of another on the clock (at most {max_batched:.0%}: platforms "
        "that settle together)",
        "benford_deviation": "first digits of the amounts that are not round deviate from "
        "Benford's law by {mad:.3f} on average (an effective {effective:.0f} inflows, log10 "
        "amounts spread {spread:.2f})",
    }
    episodes = {"week": "machine:{week}"}

    def __init__(self, thresholds: MachineFlowThresholds) -> None:
        self.thresholds = thresholds
        # Derived once (thresholds are frozen; new ones build a new detector): the growth of
        # an inflow's weight, and the coefficient-of-variation bound in a form without sqrt.
        self._growth = 1.0 / (1.0 - 1.0 / max(2, thresholds.window))
        self._cv_bound = 1.0 + thresholds.max_interval_cv**2

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        if event.direction != "in":
            return []
        t = self.thresholds
        amount = float(event.amount)
        payer = event.counterparty_id
        if amount <= 0.0 or payer in state.own_accounts:
            return []
        memory: dict[str, Any] | None = state.slots.get(self.name)
        if memory is None:
            memory = self.slot(state, _empty)
        if amount < self._floor(memory, amount):
            return []
        epoch = event.ts.timestamp()
        shown = self._learn(memory, amount, epoch, payer, event.event_id)
        if memory["n"] < t.min_samples:
            return []
        if not shown[0] and not shown[1]:
            # The inflow itself must fit a held signal (see the class); this one can only fit
            # intervals that barely vary: cv <= bound, squared and without a division. Most
            # inflows stop here, cheaply.
            i1 = memory["i1"]
            if i1 <= 0.0 or memory["i2"] * memory["iw"] > self._cv_bound * i1 * i1:
                return []
        return self._judge(memory, epoch, state, shown)

    def _floor(self, memory: dict[str, Any], amount: float) -> float:
        """The smallest inflow that counts: ``min_amount``, or less in a business whose
        typical inflow (learnt here from every inflow) is small.

        >>> detector = MachineFlowDetector(MachineFlowThresholds())
        >>> memory = {"tl": None}
        >>> [round(detector._floor(memory, 40.0)) for _ in range(3)]
        [10, 10, 10]
        >>> round(detector._floor({"tl": 4.0}, 40.0))
        100
        """
        t = self.thresholds
        log = math.log10(amount)
        before: float | None = memory.get("tl")
        typical = log if before is None else before + (log - before) / max(2, t.window)
        memory["tl"] = _short(typical)
        if t.min_share_of_typical <= 0.0:
            return t.min_amount  # 0: the absolute floor alone
        return min(t.min_amount, t.min_share_of_typical * math.pow(10.0, typical))

    def _learn(
        self, memory: dict[str, Any], amount: float, epoch: float, payer: str, event_id: str
    ) -> tuple[bool, bool]:
        """Add the inflow to the statistics; whether it is round, and whether on a live clock."""
        unit = self.thresholds.round_unit
        if "tt" not in memory:
            _upgrade_to_6(memory)
        g: float = memory["g"]
        if memory["n"] < MAX_COUNT:
            memory["n"] += 1
        memory["w"] = _short(memory["w"] + g)
        is_round = unit > 0 and amount % unit == 0.0
        if is_round:
            memory["r"] = _short(memory["r"] + g)
        else:
            log = math.log10(amount)
            digit = int(amount / 10.0 ** math.floor(log))
            counts, first = memory["d"], (1 if digit < 1 else 9 if digit > 9 else digit) - 1
            counts[first] = _short(counts[first] + g)
            memory["b"] = _short(memory["b"] + g)
            memory["b2"] = _short(memory["b2"] + g * g)
            memory["l1"] = _short(memory["l1"] + g * log)
            memory["l2"] = _short(memory["l2"] + g * log * log)
        last = memory["t"]
        if last is None:
            memory["t"] = epoch
        else:
            gap = epoch - last
            if gap > 0.0:
                memory["t"] = epoch
            else:
                gap = 0.0  # out of order or at the same instant
            memory["iw"] = _short(memory["iw"] + g)
            memory["i1"] = _short(memory["i1"] + g * gap)
            memory["i2"] = _short(memory["i2"] + g * gap * gap)
        on_clock = self._clock(memory, int(epoch), g, payer, self.thresholds)
        evidence: list[str] = memory["ev"]
        evidence.append(event_id)
        if len(evidence) > EVIDENCE_KEPT:
            del evidence[0]
        g = _short(g * self._growth)
        if g > RESCALE_AT:
            for key in ("w", "r", "b", "l1", "l2", "iw", "i1", "i2", "ch", "bt", "pc", "tt", "tx"):
                memory[key] = _forget(memory[key] / g)
            memory["b2"] = _forget(memory["b2"] / (g * g))
            memory["d"] = [_forget(count / g) for count in memory["d"]]
            memory["hv"] = [_short(count / g) for count in memory["hv"]]
            memory["pm"] = [_forget(count / g) for count in memory["pm"]]
            memory["tc"] = _short(memory["tc"] / g)
            g = 1.0
        memory["g"] = g
        return is_round, on_clock

    @staticmethod
    def _clock(
        memory: dict[str, Any], now: int, g: float, payer: str, t: MachineFlowThresholds
    ) -> bool:
        """Count the inflow as on the clock if a gap to a recent one is the usual period; and
        whether the clock is live: the previous inflow on it came at most CLOCK_MAX before.

        The gap to the latest inflow goes to its bucket (opening it, in place of the weakest,
        if need be); a gap to any recent inflow that falls on the period reinforces the
        period. A script's period thus emerges whenever two of its transfers are consecutive,
        and then holds while customers pay in between. Counts are unnormalised (see
        ``_empty``): a bucket overtakes the period only by growing itself, the one case where
        the period is looked for again.

        An inflow on the clock is compared with the payers of the latest ones on the clock
        (see PAYER_LAGS), and counted as batched when it comes within CLOCK_MIN of the
        previous one on the clock: several payers on one tick.
        """
        keys: list[int] = memory["hk"]
        values: list[float] = memory["hv"]
        times: list[int] = memory["ct"]
        top: int = memory["tb"]
        hit, periods, gap = -1, 0, 0
        live = False
        low, high = (top - 1) * CLOCK_BUCKET, (top + 2) * CLOCK_BUCKET
        # Look for a gap on the period (or a few) only if the recent gaps straddle it: in a
        # busy or a quiet spell, all of them fall short of it or all beyond, and the search is
        # skipped.
        span = CLOCK_MULTIPLES * high
        if top >= 0 and times and now - max(times) < span and now - min(times) >= low:
            for before in reversed(times):  # the nearest first: the fewest periods
                gap = now - before
                hit, periods = _on_period(gap, top)
                if hit >= 0:
                    break
            # Judged against the period as it was: placed with this gap first, the period
            # would move towards it, and chance gaps would keep time more often than beside it.
            keeps, beside = _against_period(memory, now, times, top)
            if hit >= 0 and periods == 1:
                _place_period(memory, gap, top)
            if keeps:
                memory["tt"] = _short(memory["tt"] + g)
            if beside:
                memory["tx"] = _short(memory["tx"] + g)
            if hit >= 0 and periods == 1 and (keeps or not _crowded(memory, t)):
                # Whom the ticks come from, and whether they come together, is read on the
                # gaps of one period only: across a skipped tick, a customer who happens to
                # pay on the clock would pass for a tick's payer. Where the slack is crowded
                # (see _crowded), only inflows that keep time are its ticks: the customers
                # who land on the slack by chance would pass for payers taking turns, or
                # settling together. Elsewhere every inflow on the slack is: a settlement
                # schedule a few seconds loose keeps its order only if none of its ticks is
                # left out.
                live = _tick(memory, now, g, payer)
        latest = (now - times[-1]) // CLOCK_BUCKET if times else -1
        # Only a gap of one period reinforces it: a gap of two or three is as much evidence of
        # a period two or three times as long, and counting it for the shorter one would let
        # a fraction of a script's period (found by chance in a busy shop) feed on the
        # script's own ticks and hold the true period off for good.
        if hit >= 0 and periods == 1 and hit != latest:
            if hit in keys:
                at = keys.index(hit)
                values[at] = _short(values[at] + g)
            memory["tc"] = _merged(keys, values, top)
        if CLOCK_MIN <= latest * CLOCK_BUCKET <= CLOCK_MAX:
            if latest in keys:
                at = keys.index(latest)
                values[at] = _short(values[at] + g)
            else:
                if len(keys) >= CLOCK_BUCKETS:
                    weakest = values.index(min(values))
                    del keys[weakest], values[weakest]
                keys.append(latest)
                values.append(g)
            if top - 1 <= latest <= top + 1:
                memory["tc"] = _merged(keys, values, top)
            elif _merged(keys, values, latest) > memory["tc"]:
                top = memory["tb"] = _period_bucket(keys, values)
                memory["tc"] = _merged(keys, values, top)
                precise = memory["pt"]
                if precise is not None and abs(precise - (top + 0.5) * CLOCK_BUCKET) > CLOCK_SLACK:
                    memory["pt"] = None  # a new period: its own gaps will place it
        if hit >= 0:
            memory["ch"] = _short(memory["ch"] + g)
        times.append(now)
        if len(times) > CLOCK_DEPTH:
            del times[0]
        return live

    def _regular(self, memory: dict[str, Any]) -> _Signal | None:
        """Clockwork arrivals: intervals of nearly one length, or a period kept among others
        (the ``regular_intervals/clock`` wording)."""
        t = self.thresholds
        cv = _interval_cv(memory)
        if cv is not None and cv <= t.max_interval_cv:
            return _Signal(
                "regular_intervals",
                observed=round(cv, 4),
                threshold=t.max_interval_cv,
                strength=1.0 - cv / t.max_interval_cv if t.max_interval_cv > 0 else 1.0,
                slots={"gap": _duration(memory["i1"] / memory["iw"]), "cv": cv},
            )
        if memory["i1"] <= 0.0 or memory["tb"] < 0:
            return None
        ticked = memory["lc"]
        if ticked is None or memory["t"] - ticked > CLOCK_MAX:
            return None  # the clock has stopped: its share is what decay has not yet erased
        period = (memory["tb"] + 0.5) * CLOCK_BUCKET
        share, chance = memory["ch"] / memory["w"], _chance(memory, CLOCK_SLACK)
        slack, least = CLOCK_SLACK, t.min_clock_share
        if share < least or share < CLOCK_OVER_CHANCE * chance:
            # Too few on the slack, or so many inflows that some always fall on any period: a
            # script among them still keeps its period to the second.
            held = _to_the_second(memory, t.min_tight_clock_share)
            if held is None:
                return None
            (share, chance), slack, least = held, CLOCK_TIGHT, t.min_tight_clock_share
            period = memory["pt"] or period
        return _Signal(
            "regular_intervals/clock",
            observed=round(share, 3),
            threshold=least,
            strength=(share - least) / max(1e-9, 1.0 - least),
            slots={
                "share": share,
                "period": _duration(period),
                "slack": slack,
                "chance": chance,
            },
        )

    def _rotating(self, memory: dict[str, Any]) -> _Signal | None:
        """Payers taking turns on the clock in no fixed order, one a tick."""
        t = self.thresholds
        judged = memory["pc"]
        if memory["pn"] < t.min_payer_samples or judged <= 0.0:
            return None
        matches: list[float] = memory["pm"]
        most = max(matches)
        repeat = most / judged
        batched = memory["bt"] / memory["ch"]
        if repeat > t.max_payer_repeat_share or batched > t.max_batched_share:
            return None
        limit = t.max_payer_repeat_share
        return _Signal(
            "rotating_payers",
            observed=round(repeat, 3),
            threshold=t.max_payer_repeat_share,
            strength=1.0 - repeat / limit if limit > 0 else 1.0,
            slots={
                "period": _duration((memory["tb"] + 0.5) * CLOCK_BUCKET),
                "repeat": repeat,
                "lag": matches.index(most) + 1,
                "batched": batched,
                "minutes": CLOCK_MIN / 60,
                "max_batched": t.max_batched_share,
            },
        )

    def _round(self, memory: dict[str, Any]) -> _Signal | None:
        """More round amounts among the inflows (weighted) than ``max_round_share``."""
        t = self.thresholds
        share = memory["r"] / memory["w"]
        if share <= t.max_round_share:
            return None
        return _Signal(
            "round_amounts",
            observed=round(share, 3),
            threshold=t.max_round_share,
            strength=(share - t.max_round_share) / max(1e-9, 1.0 - t.max_round_share),
            slots={"share": share, "unit": t.round_unit},
        )

    def _benford(self, memory: dict[str, Any]) -> _Signal | None:
        """First digits of the amounts that are not round far from Benford's law, beyond what
        chance gives at their effective number."""
        t = self.thresholds
        tested = memory["b"]
        if tested <= 0.0:
            return None
        mean_log = memory["l1"] / tested
        spread = math.sqrt(max(0.0, memory["l2"] / tested - mean_log * mean_log))
        digits = zip(memory["d"], BENFORD, strict=True)
        mad = sum(abs(count / tested - share) for count, share in digits) / 9.0
        effective = tested * tested / memory["b2"]
        noise = BENFORD_NOISE_AT_60 * math.sqrt(60.0 / effective)
        min_mad = math.hypot(t.min_benford_mad, noise)
        if not (spread >= t.min_benford_spread and mad >= min_mad):
            return None
        return _Signal(
            "benford_deviation",
            observed=round(mad, 4),
            threshold=round(min_mad, 4),
            strength=min(1.0, (mad - min_mad) / max(1e-9, min_mad)),
            slots={"mad": mad, "effective": effective, "spread": spread},
        )

    def _judge(
        self, memory: dict[str, Any], epoch: float, state: BorrowerState, shown: tuple[bool, bool]
    ) -> Output:
        t = self.thresholds
        inflow_round, inflow_on_clock = shown
        if "pp" not in memory:
            _upgrade(memory)  # a slot of version 1 that has not been on the clock since
        rounded = self._round(memory)
        regular = self._regular(memory)
        rotating = self._rotating(memory) if regular is not None else None
        cheap = [signal for signal in (rounded, regular, rotating) if signal is not None]
        if len(cheap) + 1 < t.min_signals:
            return []  # Benford alone cannot make up the count: skip its cost
        if not (
            (rounded is not None and inflow_round)
            or (regular is not None and (inflow_on_clock or regular.key == "regular_intervals"))
        ):
            return []  # the inflow itself does not fit: the script may have stopped
        week = iso_week(epoch)
        if memory["wk"] == week:
            return []  # this week's episode is already out
        skewed = self._benford(memory)
        held = cheap if skewed is None else [*cheap, skewed]
        if len(held) < t.min_signals or not held:
            return []
        memory["wk"] = week
        strength = sum(signal.strength for signal in held) / len(held)
        score = 0.5 + 0.15 * (len(held) - 2) + 0.3 * strength
        return [
            self.finding(
                state.borrower_id,
                episode=self.episode("week", week=week),
                ts=datetime.fromtimestamp(epoch, UTC),
                score=min(1.0, max(0.5, score)),
                reasons=[
                    self.reason(s.key, observed=s.observed, threshold=s.threshold, **s.slots)
                    for s in held
                ],
                evidence=list(memory["ev"]),
            )
        ]


def _tick(memory: dict[str, Any], now: int, g: float, payer: str) -> bool:
    """Count an inflow on the clock: against the payers of the latest ones on it (see
    PAYER_LAGS), as batched when within CLOCK_MIN of the previous one; and whether the clock
    is live (the previous inflow on it at most CLOCK_MAX before)."""
    try:
        recent: list[str] = memory["pp"]
    except KeyError:  # a slot of version 1
        _upgrade(memory)
        recent = memory["pp"]
    live = False
    previous = memory["lc"]
    if previous is not None:
        live = now - previous <= CLOCK_MAX
        if now - previous < CLOCK_MIN:
            memory["bt"] = _short(memory["bt"] + g)
    if len(recent) == PAYER_LAGS:
        matches: list[float] = memory["pm"]
        lag = PAYER_LAGS
        for who in recent:  # the earliest first: lag PAYER_LAGS down to 1
            if who == payer:
                matches[lag - 1] = _short(matches[lag - 1] + g)
            lag -= 1
        memory["pc"] = _short(memory["pc"] + g)
        if memory["pn"] < MAX_COUNT:
            memory["pn"] += 1
        del recent[0]
    recent.append(payer)
    memory["lc"] = now
    return live


def _on_period(gap: int, top: int) -> tuple[int, int]:
    """The bucket of one period that ``gap`` falls on, and how many periods of the ``top``
    bucket it spans (1 to CLOCK_MULTIPLES, give or take a bucket and a half); (-1, 0) when
    it falls on none.

    >>> _on_period(3_620, 120), _on_period(7_230, 120), _on_period(5_000, 120)
    ((120, 1), (120, 2), (-1, 0))
    """
    period = (top + 0.5) * CLOCK_BUCKET
    for times in range(1, CLOCK_MULTIPLES + 1):
        if abs(gap - times * period) < CLOCK_SLACK:
            return int(gap / times) // CLOCK_BUCKET, times
    return -1, 0


def _chance(memory: dict[str, Any], slack: float) -> float:
    """The share of inflows chance puts on the clock: one has an earlier one in some window of
    ``slack`` either side of the period (or two or three times it), at the borrower's rate."""
    rate: float = memory["iw"] / memory["i1"]
    return CLOCK_MULTIPLES * 2.0 * slack * rate


def _to_the_second(memory: dict[str, Any], least: float) -> tuple[float, float] | None:
    """The share of inflows that keep time and what chance gives there, if at least ``least``
    keep time and TIGHT_OVER_CHANCE times chance: at the borrower's average rate, or what
    lands beside the period if more (customers come in rushes, and a short period catches a
    rush's at once). Asked by :meth:`MachineFlowDetector._regular` once there are intervals."""
    share: float = memory["tt"] / memory["w"]
    chance = max(_chance(memory, CLOCK_TIGHT), memory["tx"] / memory["w"])
    if share < least or share < TIGHT_OVER_CHANCE * chance:
        return None
    return share, chance


def _crowded(memory: dict[str, Any], t: MachineFlowThresholds) -> bool:
    """Whether chance alone puts so many inflows on the slack that a clock there needs more
    than ``min_clock_share`` (CLOCK_OVER_CHANCE times chance): a busy shop's, whose customers
    on the slack would pass for its ticks.

    It turns on the borrower's rate, which moves slowly, and not on whether a clock holds,
    which flips: a settlement schedule a few seconds loose whose ticks were left out while one
    clock held, and counted while the other did, would lose its fixed order.
    """
    if memory["i1"] <= 0.0:
        return False
    return CLOCK_OVER_CHANCE * _chance(memory, CLOCK_SLACK) > t.min_clock_share


def _place_period(memory: dict[str, Any], gap: int, top: int) -> None:
    """Place the period to the tenth of a second with a gap of one period on its slack: a
    mean that follows the gaps near it, so that a script's ticks pull it to their period and
    chance gaps, as many either side, do not move it.

    A script every 3,640 s, its period first placed at the middle of the 3,600-3,630 s bucket:

    >>> memory = {"pt": None}
    >>> for _ in range(8):
    ...     _place_period(memory, 3_640, 120)
    >>> memory["pt"]
    3631.3
    """
    precise: float | None = memory["pt"]
    if precise is None:
        precise = (top + 0.5) * CLOCK_BUCKET
    if abs(gap - precise) < CLOCK_SLACK:
        precise += (gap - precise) / PERIOD_MEMORY
    memory["pt"] = round(precise, 1)


def _against_period(
    memory: dict[str, Any], now: int, times: list[int], top: int
) -> tuple[bool, bool]:
    """Whether an inflow keeps time: a recent one came CLOCK_TIGHT seconds or less from one,
    two or three periods (to the second) before it; and whether one came beside that time,
    CLOCK_BESIDE seconds further from it, in windows as wide. A script's ticks keep time; a
    customer lands beside it as often as on it, and so counts what chance gives at this
    borrower's hours, rushes and quiet spells.

    >>> memory = {"pt": 3_631.3}
    >>> _against_period(memory, 10_000, [10_000 - 3_640, 10_000 - 7_260], 120)
    (True, False)
    >>> _against_period(memory, 10_000, [10_000 - 3_690], 120)
    (False, True)
    """
    precise: float = memory["pt"] or (top + 0.5) * CLOCK_BUCKET
    keeps = beside = False
    for before in times:
        gap = now - before
        # Only the nearest multiple can be within CLOCK_BESIDE + CLOCK_TIGHT: the period is
        # placed by gaps on the slack of a bucket of CLOCK_MIN or more, so it is over 250 s
        # and the other multiples are half of it away or more.
        periods = round(gap / precise)
        if not 1 <= periods <= CLOCK_MULTIPLES:
            continue
        off = abs(gap - periods * precise)
        if off <= CLOCK_TIGHT:
            keeps = True
        elif CLOCK_BESIDE < off <= CLOCK_BESIDE + CLOCK_TIGHT:
            beside = True
    return keeps, beside


def _merged(keys: list[int], values: list[float], bucket: int) -> float:
    """Count of a bucket with its larger neighbour's (0 for a bucket not kept)."""
    if bucket not in keys:
        return 0.0
    below = values[keys.index(bucket - 1)] if bucket - 1 in keys else 0.0
    above = values[keys.index(bucket + 1)] if bucket + 1 in keys else 0.0
    return _short(values[keys.index(bucket)] + max(below, above))


def _period_bucket(keys: list[int], values: list[float]) -> int:
    """The bucket of gaps that, with its larger neighbour, is the most frequent (-1: none).

    A period's gaps straddle two buckets; merging neighbours also keeps twice the period
    (which every other inflow of a script adds too) from winning over the period itself.
    """
    counts = dict(zip(keys, values, strict=True))
    best, best_count = -1, 0.0
    for bucket, count in counts.items():
        merged = count + max(counts.get(bucket - 1, 0.0), counts.get(bucket + 1, 0.0))
        if merged > best_count or (merged == best_count and bucket < best):
            best, best_count = bucket, merged
    return best


def _forget(value: float) -> float:
    """A sum decayed below a trillionth of one inflow's weight is nothing (and is short)."""
    return 0.0 if abs(value) < 1e-12 else _short(value)


def _short(value: float) -> float:
    """``value`` to 7 significant digits, kept so in the statistics themselves.

    Every statistic is a ratio of decayed sums, which 7 digits hold to a millionth; 17 digits
    cost the changelog 30 numbers of up to 22 characters, which compress poorly. Rounded at
    each update, not on writing: a worker and a replay, which write a state at different
    moments, then compute on the same numbers.

    >>> _short(3875465066785.8374), _short(0.1 + 0.2), _short(0.0)
    (3875465000000.0, 0.3, 0.0)
    """
    return float("%.7g" % value)  # noqa: UP031 - a third faster than an f-string here


def _interval_cv(memory: dict[str, Any]) -> float | None:
    """Coefficient of variation of the decayed intervals; None before there are any."""
    weight: float = memory["iw"]
    if weight <= 0.0:
        return None
    mean: float = memory["i1"] / weight
    if mean <= 0.0:
        return None  # every inflow at the same instant: a batch, not a clock
    variance = max(0.0, memory["i2"] / weight - mean * mean)
    return math.sqrt(variance) / mean


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 60:.1f} min"
