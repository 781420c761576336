"""Simulator profiles: named sets of knobs that vary what a rule tuned to one population sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "BASELINE",
    "PROFILES",
    "Profile",
    "SectorShock",
    "profile_named",
    "profiles_named",
]

# A profile is read where a knob acts (sim/benign/, sim/typologies/) as ``world.config.profile``.
# Every knob's default is what the simulator did before profiles existed, and a knob at its
# default draws no random number it did not draw then: the baseline profile gives the same bytes
# (tests/sim/test_simulation.py pins them). A knob that adds an episode draws only when it is on.


@dataclass(frozen=True)
class SectorShock:
    """Every borrower of one sector loses business together for a while, then recovers.

    A lockdown for restaurants, a port closure for logistics: the same days for all of the
    sector, so a rule that compares a borrower only with its own past sees a decline on each.
    Installments are still paid as usual: nobody in a shock is a delinquent because of it.
    """

    sector: str
    first_day: int
    days: int
    #: Share of the usual customer payments that still come (0.4: inflows down by 60 %).
    inflow: float
    #: Share of the usual supplier payments that still go out (businesses buy less too).
    outflow: float

    @property
    def span(self) -> range:
        return range(self.first_day, self.first_day + self.days)


#: The restaurant slump every run had before profiles: inflows down 40 % for 11 days.
RESTAURANT_SLUMP = SectorShock("restaurant", first_day=35, days=11, inflow=0.6, outflow=0.7)


@dataclass(frozen=True)
class Profile:
    """A named population: sectors, shocks, payment habits, attackers and their benign twins.

    Knobs a typology module does not know yet keep their default there; a module reads
    ``world.config.profile.<knob>``. The baseline's values are the simulator's behaviour
    before profiles existed.
    """

    name: str
    description: str

    # --- who borrows ----------------------------------------------------------------------------
    #: Share of the population per sector name; ``None`` keeps each sector's own ``share``.
    #: A rule fitted to a mix (many restaurants, few manufacturers) breaks on another mix.
    sector_mix: tuple[tuple[str, float], ...] | None = None
    #: Median of a borrower's business size (its count of payments) against its sector's: small
    #: shops below 1, bigger firms above; the size is clamped to [0.5, 1.6] times this median.
    size_median: float = 1.0
    #: Spread (log-normal sigma) of business sizes within a sector: how unlike neighbours are.
    size_sigma: float = 0.3
    #: Whether transactions carry the optional ``sector`` field (contract 1.1). Platforms that do
    #: not fill it leave a detector to find a shared move from the borrowers' own flows.
    report_sector: bool = True

    # --- the sector's weather ------------------------------------------------------------------
    #: Sector-wide shocks: the same days and depth for every borrower of the sector, every
    #: installment still paid (a benign look-alike of a decline before a default).
    shocks: tuple[SectorShock, ...] = (RESTAURANT_SLUMP,)

    # --- how borrowers repay -------------------------------------------------------------------
    #: Share of the borrowers with a loan who habitually pay late, always in full, within grace.
    late_payer_share: float = 0.1
    #: How many days after the due date a habitual late payer pays (grace is 3 days).
    late_days: tuple[int, ...] = (1, 2)
    #: Chance an installment's debit bounces (a ``reversal``) and the borrower pays it again
    #: within the grace period: a reversal made good is no default.
    reversal_rate: float = 0.0
    #: Hours from a reversal to the payment that makes it good (low, high), never past the end
    #: of grace: a rule that forgives a reversal only if it is made good within a day breaks.
    reversal_repay_hours: tuple[int, int] = (2, 48)
    #: Share of the borrowers with a loan whose business dips for weeks and recovers (a season,
    #: a roadworks), every installment paid: a decline that is not a delinquency.
    dip_share: float = 0.02
    #: How deep a dip goes: inflows fall to this share of normal (low, high) before recovering.
    dip_floor: tuple[float, float] = (0.35, 0.6)

    # --- attackers ------------------------------------------------------------------------------
    #: Default case counts of typologies multiplied by these factors (typology, factor); a
    #: typology not named keeps its count. The phished takeover is off in the baseline.
    case_rates: tuple[tuple[str, float], ...] = (("account_takeover_phished", 0.0),)
    #: A replayed device id comes from the attacker's ``mobile`` or a ``broadband`` (residential
    #: proxy) address in another city; a broadband address looks like someone's home.
    replay_network: str = "mobile"
    #: Failed logins before a replay gets in (low, high): a burst, or only a few.
    replay_failures: tuple[int, int] = (4, 12)
    #: Hours of the day a replay starts in (first, last): before dawn, or any time.
    replay_hours: tuple[int, int] = (0, 5)
    #: Minutes from an attacker's success to the payout change (at most), and to the drawdown.
    takeover_minutes: tuple[int, int] = (55, 115)

    # --- how flows are falsified ----------------------------------------------------------------
    #: How far the far side of a pass-through, and each hop of a ring, strays from the money
    #: before it, against the baseline's (a fee of up to 3 % or 2 %; or -5 %..+2 % and ±3 %):
    #: a tolerance that matches the simulator's own breaks on a skim of 8 % or hops of ±10 %.
    hop_spread: float = 1.0
    #: The slowest hand-on of a pass-through case and the longest gap between a ring's hops,
    #: against the baseline's (2.5 h and 6 h): conduits that wait for the day's batch.
    hand_on_scale: float = 1.0
    #: Days of a revenue-inflation ramp before the application (low, high): a rule that knows
    #: only the simulator's 3-6 weeks breaks on a fortnight's burst or two months' creep ...
    ramp_days: tuple[int, int] = (21, 42)
    #: ... and the extra inflow of its last 30 days, in months of normal inflow (low, high).
    ramp_boost: tuple[float, float] = (1.0, 2.0)
    #: Seconds a machine-made payment strays from its script's period, at most (low, high;
    #: drawn per case): to the second, or a minute or two of a queue's delay.
    script_jitter: tuple[int, int] = (1, 8)

    # --- benign twins of the attacks ---------------------------------------------------------
    #: Share of the population that moves to a new phone during the period.
    new_phone_share: float = 0.05
    #: Share of those new phones whose first session applies for and draws a loan at once: a
    #: new device and an unseen address followed by money, like a phished login, but benign.
    new_phone_drawdown: float = 0.0
    #: Share of the population on a trip of a few days to another city.
    trip_share: float = 0.05
    #: Share of the population that shares a family member's or an accountant's device.
    shared_device_share: float = 0.03

    # --- when things happen within a day ---------------------------------------------------------
    #: Weights of the 24 hours (platform time) at which borrowers open the app; ``None`` keeps
    #: the usual morning and evening peaks. Night owls make "before dawn" no evidence.
    login_hours: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.login_hours is not None and (
            len(self.login_hours) != 24 or min(self.login_hours) < 0 or not sum(self.login_hours)
        ):
            raise ValueError(f"profile {self.name}: login_hours needs 24 weights, not all 0")
        if self.replay_network not in ("mobile", "broadband"):
            raise ValueError(f"profile {self.name}: replay_network is mobile or broadband")
        to_change, to_drawdown = self.takeover_minutes
        if not 2 < to_change < to_drawdown - 1:
            raise ValueError(f"profile {self.name}: takeover_minutes needs 2 < change < drawdown-1")
        if (
            self.replay_failures[0] < 2
            or not 0 <= self.replay_hours[0] <= self.replay_hours[1] < 24
        ):
            raise ValueError(f"profile {self.name}: replays need 2+ failures and hours in 0..23")
        if not 0 < self.reversal_repay_hours[0] <= self.reversal_repay_hours[1]:
            raise ValueError(f"profile {self.name}: reversal_repay_hours needs 0 < low <= high")
        if not (0 < self.hop_spread <= 5 and 0 < self.hand_on_scale <= 4):
            raise ValueError(f"profile {self.name}: hop_spread in (0, 5], hand_on_scale in (0, 4]")
        low, high = self.ramp_days
        if not 7 <= low <= 21 or high < low or not 0 < self.ramp_boost[0] <= self.ramp_boost[1]:
            raise ValueError(
                f"profile {self.name}: ramp_days needs 7 <= low <= 21 and low <= high, "
                "ramp_boost 0 < low <= high"
            )
        if not 0 <= self.script_jitter[0] <= self.script_jitter[1] <= 600:
            raise ValueError(f"profile {self.name}: script_jitter needs 0 <= low <= high <= 600")
        for share in (self.late_payer_share, self.reversal_rate, self.dip_share):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"profile {self.name}: a share must lie in [0, 1], got {share}")

    def case_rate(self, typology: str) -> float:
        """The factor on ``typology``'s default count (1 when the profile does not name it)."""
        return dict(self.case_rates).get(typology, 1.0)


BASELINE = Profile(
    name="baseline",
    description="the simulator as it was: a restaurant slump of 40 %, 10 % late payers, "
    "takeovers by failure bursts and by device replays before dawn from a mobile address",
)

#: Night owls: the app opened at any hour, late evenings above all.
NIGHT_OWLS = (2, 2, 1.5, 1, 1, 1, 1, 1.5, 2, 2.5, 2.5, 2.5, 2, 2, 2, 2, 2, 2.5, 3, 3, 3, 3, 3, 2.5)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        p.name: p
        for p in (
            BASELINE,
            Profile(
                name="retail-heavy",
                description="many small consumer businesses, no sector field, a retail slump "
                "of 55 % for two weeks; replays from a home address after a few failures; "
                "phished logins at the first try",
                sector_mix=(
                    ("ecommerce", 0.2),
                    ("restaurant", 0.3),
                    ("retail", 0.4),
                    ("manufacturing", 0.05),
                    ("logistics", 0.05),
                ),
                size_median=0.7,
                size_sigma=0.45,
                report_sector=False,
                shocks=(SectorShock("retail", first_day=40, days=14, inflow=0.45, outflow=0.6),),
                case_rates=(("account_takeover_phished", 1.0),),
                replay_network="broadband",
                replay_failures=(2, 4),
                replay_hours=(0, 20),
                new_phone_drawdown=0.3,
            ),
            Profile(
                name="sector-shock",
                description="a lockdown: restaurants' inflows down 65 % for 16 days and "
                "logistics' down 55 % for two weeks, bigger firms, every installment paid; "
                "fast takeovers, replays at any hour",
                sector_mix=(
                    ("ecommerce", 0.15),
                    ("restaurant", 0.35),
                    ("retail", 0.15),
                    ("manufacturing", 0.15),
                    ("logistics", 0.2),
                ),
                size_median=1.3,
                shocks=(
                    SectorShock("restaurant", first_day=45, days=16, inflow=0.35, outflow=0.5),
                    SectorShock("logistics", first_day=50, days=14, inflow=0.45, outflow=0.6),
                ),
                case_rates=(("account_takeover_phished", 1.0),),
                replay_hours=(0, 23),
                takeover_minutes=(10, 25),
                dip_share=0.05,
            ),
            Profile(
                name="noisy-payers",
                description="a quarter of payers late by up to 3 days, 8 % of debits bounced "
                "and paid again up to 4 days later, 8 % dips that recover, night owls, many "
                "trips, new phones and shared devices; phished logins and home-address replays",
                late_payer_share=0.25,
                late_days=(1, 2, 3),
                reversal_rate=0.08,
                reversal_repay_hours=(6, 96),
                dip_share=0.08,
                dip_floor=(0.25, 0.5),
                case_rates=(("account_takeover_phished", 1.0),),
                replay_network="broadband",
                replay_failures=(2, 5),
                replay_hours=(6, 23),
                new_phone_share=0.1,
                new_phone_drawdown=0.2,
                trip_share=0.1,
                shared_device_share=0.06,
                login_hours=NIGHT_OWLS,
            ),
            Profile(
                name="mixed",
                description="the others' stresses at once, in other measures: no sector field, "
                "restaurants down 60 % for 20 days and retail 50 % for 12 later, sizes spread "
                "wide; a fifth late, 5 % of debits bounced and paid again up to 3 days later, "
                "dips; night owls; replays from home addresses after a few failures, phished "
                "logins, takeovers within the hour",
                sector_mix=(
                    ("ecommerce", 0.25),
                    ("restaurant", 0.3),
                    ("retail", 0.25),
                    ("manufacturing", 0.1),
                    ("logistics", 0.1),
                ),
                size_median=0.9,
                size_sigma=0.5,
                report_sector=False,
                shocks=(
                    SectorShock("restaurant", first_day=30, days=20, inflow=0.4, outflow=0.55),
                    SectorShock("retail", first_day=55, days=12, inflow=0.5, outflow=0.6),
                ),
                late_payer_share=0.2,
                late_days=(1, 2, 3),
                reversal_rate=0.05,
                reversal_repay_hours=(1, 72),
                dip_share=0.06,
                dip_floor=(0.3, 0.55),
                case_rates=(("account_takeover_phished", 1.0),),
                replay_network="broadband",
                replay_failures=(2, 6),
                replay_hours=(3, 22),
                takeover_minutes=(20, 60),
                new_phone_share=0.08,
                new_phone_drawdown=0.25,
                trip_share=0.08,
                shared_device_share=0.05,
                login_hours=NIGHT_OWLS,
            ),
            Profile(
                name="loose-flows",
                description="falsified flows off the simulator's script: conduits that hand "
                "money on up to 5 h later and skim up to 7.5 %, ring hops that stray by up "
                "to 7.5 %, inflation ramps of 2-8 weeks adding 0.6-1.4 months of takings; "
                "trading firms' lumpy flows, bigger firms, no sector field, a manufacturing "
                "slump; phished logins",
                sector_mix=(
                    ("ecommerce", 0.15),
                    ("restaurant", 0.15),
                    ("retail", 0.15),
                    ("manufacturing", 0.3),
                    ("logistics", 0.25),
                ),
                size_median=1.2,
                size_sigma=0.4,
                report_sector=False,
                shocks=(
                    SectorShock("manufacturing", first_day=50, days=10, inflow=0.6, outflow=0.7),
                ),
                late_payer_share=0.15,
                reversal_rate=0.03,
                case_rates=(("account_takeover_phished", 1.0),),
                hop_spread=2.5,
                hand_on_scale=2.0,
                ramp_days=(14, 56),
                ramp_boost=(0.6, 1.4),
            ),
        )
    }
)


def profile_named(name: str) -> Profile:
    """The shipped profile of this name; a ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None


def profiles_named(names: str) -> list[Profile]:
    """Profiles from a comma-separated list (``all``: every shipped one), in the given order."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if wanted == ["all"]:
        return list(PROFILES.values())
    if not wanted:
        raise ValueError("no profile named; known: " + ", ".join(PROFILES))
    return [profile_named(n) for n in dict.fromkeys(wanted)]
