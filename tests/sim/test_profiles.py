"""Simulator profiles: each knob changes what it says; the baseline is the simulator as it was."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import cache

import pytest

from sim import BASELINE, PROFILES, Profile, Simulation, SimulationConfig, profile_named, simulate
from sim.plan import plan
from sim.population import CITIES
from sim.profiles import NIGHT_OWLS, SectorShock, profiles_named
from sim.world import World
from tests.sim.helpers import Value, instant, labelled_ids, labels_of
from topics.names import Source

BASE = SimulationConfig(borrowers=120, days=75, seed=21)
#: A profile with every knob at the baseline's value but its name: the same population.
TWIN = replace(BASELINE, name="twin", description="the baseline's knobs under another name")


@cache
def run(
    profile: Profile, borrowers: int = BASE.borrowers, cases: str = "", count: int = 3
) -> Simulation:
    counts = {name: count for name in cases.split(",") if name}
    config = replace(BASE, borrowers=borrowers, profile=profile, cases=counts or None)
    return simulate(config)


def world_of(profile: Profile, borrowers: int = 400) -> World:
    """The planned world (traits and episodes) of a profile, without generating the days."""
    world = World(replace(BASE, borrowers=borrowers, profile=profile))
    plan(world)
    return world


def values(sim: Simulation, source: Source) -> list[Value]:
    topic = BASE.topics.input_topic(source)
    return [r["value"] for r in sim.records if r["topic"] == topic]


def day(value: Value) -> int:
    return (instant(value) - BASE.start).days


def test_the_default_profile_is_the_baseline_and_its_knobs_draw_nothing_new() -> None:
    assert SimulationConfig().profile is BASELINE is profile_named("baseline")
    # The pinned digests (test_simulation.py) hold the baseline's bytes; a profile with the
    # same knobs under another name gives the same records and labels.
    assert run(TWIN).records == run(BASELINE).records
    assert run(TWIN).labels == run(BASELINE).labels


def test_the_shipped_profiles_differ_materially() -> None:
    assert len(PROFILES) >= 4 and set(PROFILES) >= {"baseline", "sector-shock", "noisy-payers"}
    knobs = [
        {k: v for k, v in vars(p).items() if k not in ("name", "description")}
        for p in PROFILES.values()
    ]
    for i, mine in enumerate(knobs):
        for other in knobs[i + 1 :]:
            assert sum(mine[k] != other[k] for k in mine) >= 5


def test_profiles_are_named_and_unknown_names_are_refused() -> None:
    assert [p.name for p in profiles_named("noisy-payers, baseline")] == [
        "noisy-payers",
        "baseline",
    ]
    assert list(profiles_named("all")) == list(PROFILES.values())
    with pytest.raises(ValueError, match="unknown profile 'lockdown'; known: baseline"):
        profiles_named("baseline,lockdown")
    with pytest.raises(ValueError):
        profiles_named(" , ")


@pytest.mark.parametrize(
    "knobs",
    [
        {"login_hours": (1.0,) * 23},
        {"replay_network": "satellite"},
        {"late_payer_share": 1.5},
        {"takeover_minutes": (30, 20)},
        {"replay_failures": (1, 3)},
        {"reversal_repay_hours": (0, 10)},
        {"hop_spread": 0.0},
        {"hand_on_scale": 9.0},
        {"ramp_days": (28, 42)},
        {"ramp_boost": (1.0, 0.5)},
        {"script_jitter": (30, 10)},
    ],
)
def test_impossible_knobs_are_refused(knobs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        replace(BASELINE, **knobs)


def test_sector_mix_and_the_sector_field() -> None:
    mix = (("retail", 0.5), ("restaurant", 0.5))
    world = world_of(replace(BASELINE, name="mix", sector_mix=mix))
    counts = Counter(b.sector.name for b in world.borrowers)
    assert counts == {"retail": 200, "restaurant": 200}
    silent = run(replace(BASELINE, name="silent", report_sector=False))
    assert not any("sector" in tx for tx in values(silent, Source.TRANSACTIONS))
    assert all("sector" in tx for tx in values(run(BASELINE), Source.TRANSACTIONS))


def test_size_median_makes_businesses_smaller() -> None:
    small = world_of(replace(BASELINE, name="small", size_median=0.6))
    usual = world_of(BASELINE)
    mean = lambda w: sum(b.count_scale for b in w.borrowers) / len(w.borrowers)  # noqa: E731
    assert mean(small) < 0.7 * mean(usual)
    assert max(b.count_scale for b in small.borrowers) <= 0.6 * 1.6


def _sales_per_day(sim: Simulation, sector: str) -> Counter[int]:
    """Customer payments per day, over the borrowers of one sector."""
    return Counter(
        day(tx)
        for tx in values(sim, Source.TRANSACTIONS)
        if tx.get("sector") == sector
        and tx["direction"] == "in"
        and tx["counterparty_id"].startswith(("cust-", "corp-", "acq-", "plat-"))
    )


def test_a_sector_shock_halves_that_sector_only_and_installments_are_still_paid() -> None:
    shock = SectorShock("logistics", first_day=40, days=14, inflow=0.4, outflow=0.6)
    sim = run(replace(BASELINE, name="shock", shocks=(shock,)))
    usual = run(BASELINE)
    for sector, hit in (("logistics", True), ("restaurant", False)):
        mine, before = _sales_per_day(sim, sector), _sales_per_day(usual, sector)
        during = sum(mine[d] for d in shock.span) / sum(before[d] for d in shock.span)
        # The baseline's restaurant slump (days 35-45) is not in this profile.
        assert (during < 0.5) if hit else (during > 0.9)
    labelled = labelled_ids(sim)
    paid = Counter(
        (r["loan_id"], r["installment"])
        for r in values(sim, Source.REPAYMENTS)
        if r["kind"] == "payment" and r["borrower_id"] not in labelled
    )
    due = [
        (r["loan_id"], r["installment"])
        for r in values(sim, Source.REPAYMENTS)
        if r["kind"] == "scheduled"
        and r["borrower_id"] not in labelled
        and date.fromisoformat(r["due_date"]) <= BASE.start.date() + timedelta(days=70)
    ]
    assert due and all(paid[k] for k in due)


def _lateness(sim: Simulation) -> list[int]:
    """Days after its due date each benign installment was paid in full (negative: early)."""
    dues: dict[tuple[str, int], date] = {}
    paid: dict[tuple[str, int], date] = {}
    labelled = labelled_ids(sim)
    for r in values(sim, Source.REPAYMENTS):
        key = (r["loan_id"], r["installment"])
        if r["borrower_id"] in labelled:
            continue
        if r["kind"] == "scheduled":
            dues[key] = date.fromisoformat(r["due_date"])
        elif r["kind"] == "payment":
            paid[key] = instant(r).date()  # the last payment completes it
    return [(paid[k] - dues[k]).days for k in paid]


def test_late_payer_share_and_late_days_show_in_the_repayments() -> None:
    usual = Counter(d > 0 for d in _lateness(run(BASELINE)))
    noisy = replace(BASELINE, name="late", late_payer_share=0.5, late_days=(1, 2, 3))
    late = _lateness(run(noisy))
    share = sum(d > 0 for d in late) / len(late)
    assert share > 2 * usual[True] / sum(usual.values())
    assert max(_lateness(run(BASELINE))) <= 2 and max(late) == 3
    assert all(d <= 3 for d in late)  # always inside the 3-day grace


def test_reversals_are_made_good_inside_the_grace_period() -> None:
    assert not any(r["kind"] == "reversal" for r in values(run(BASELINE), Source.REPAYMENTS))
    knobs = {"reversal_rate": 0.3, "reversal_repay_hours": (30, 40)}
    sim = run(replace(BASELINE, name="bounces", **knobs))
    repayments = values(sim, Source.REPAYMENTS)
    due = {
        (r["loan_id"], r["installment"]): date.fromisoformat(r["due_date"])
        for r in repayments
        if r["kind"] == "scheduled"
    }
    reversals = [r for r in repayments if r["kind"] == "reversal"]
    assert len(reversals) >= 20
    txs = values(sim, Source.TRANSACTIONS)
    period_end = BASE.start + timedelta(days=BASE.days)
    for reversal in reversals:
        key = (reversal["loan_id"], reversal["installment"])
        grace_end = datetime.combine(due[key] + timedelta(days=4), datetime.min.time())
        grace_end = grace_end.replace(tzinfo=BASE.start.tzinfo)
        if grace_end > period_end:
            continue  # paid again after the period, if at all
        again = [
            r
            for r in repayments
            if (r["loan_id"], r["installment"]) == key
            and r["kind"] == "payment"
            and instant(reversal) < instant(r) < grace_end
        ]
        assert again and again[0]["amount"] == reversal["amount"]
        late = instant(again[0]) - instant(reversal)
        # 30-40 hours later, unless that would pass the end of grace (20:00 on its last day).
        assert timedelta(hours=30) <= late <= timedelta(hours=40) or (
            instant(again[0]) >= grace_end - timedelta(hours=8)
        )
        assert any(
            tx["counterparty_id"] == "lender-repay"
            and tx["direction"] == "in"
            and tx["ts"] == reversal["ts"]
            for tx in txs
        )


def test_dips_that_recover_follow_dip_share_and_dip_floor() -> None:
    def dips(world: World) -> list[float]:
        return [b.decline[2] for b in world.borrowers if b.decline and b.decline[3] is not None]

    many = dips(world_of(replace(BASELINE, name="dips", dip_share=0.1, dip_floor=(0.2, 0.3))))
    assert len(dips(world_of(BASELINE))) == 8 and len(many) == 40
    assert all(0.2 <= floor <= 0.3 for floor in many)


def _pass_throughs(sim: Simulation) -> list[tuple[float, int]]:
    """Every pass-through's far side against its near side, and its case's slowest hand-on."""
    return [
        (float(move["amounts"][1]) / float(move["amounts"][0]), label.detail["slowest_minutes"])
        for label in labels_of(sim, "pass_through")
        for move in label.detail["moves"]
    ]


def _ring_hops(sim: Simulation) -> list[tuple[float, float]]:
    """Every ring hop against the one before, and the hours between them."""
    hops = [
        cycle for label in labels_of(sim, "circular_transfer") for cycle in label.detail["cycles"]
    ]
    return [
        (
            float(b["amount"]) / float(a["amount"]),
            (instant(b["ts"]) - instant(a["ts"])).total_seconds() / 3600,
        )
        for cycle in hops
        for a, b in zip(cycle, cycle[1:], strict=False)
    ]


def test_hop_spread_and_hand_on_scale_loosen_pass_throughs_and_rings() -> None:
    cases = "pass_through,circular_transfer"
    loose = replace(BASELINE, name="loose", hop_spread=2.5, hand_on_scale=2.0)
    usual, wide = (_pass_throughs(run(p, 300, cases, count=8)) for p in (BASELINE, loose))
    assert all(0.95 <= ratio <= 1.02 and minutes <= 150 for ratio, minutes in usual)
    assert all(0.875 <= ratio <= 1.05 and minutes <= 300 for ratio, minutes in wide)
    assert any(ratio < 0.95 for ratio, _ in wide) and any(ratio > 1.02 for ratio, _ in wide)
    assert any(minutes > 150 for _, minutes in wide)

    usual_hops, wide_hops = (
        _ring_hops(run(BASELINE, 300, cases)),
        _ring_hops(run(loose, 300, cases)),
    )
    assert all(0.97 <= r <= 1.03 and hours <= 6 for r, hours in usual_hops)
    assert all(0.92 <= r <= 1.08 and hours <= 12 for r, hours in wide_hops)
    assert any(not 0.97 <= r <= 1.03 for r, _ in wide_hops)
    assert any(hours > 6 for _, hours in wide_hops)


def test_ramp_days_and_boost_shape_revenue_inflation() -> None:
    short = replace(BASELINE, name="short", ramp_days=(10, 14), ramp_boost=(0.5, 0.6))
    for profile, (low, high) in ((BASELINE, (21, 42)), (short, (10, 14))):
        ramps = labels_of(run(profile, 300, "revenue_inflation"), "revenue_inflation")
        assert ramps and all(low <= label.detail["ramp_days"] <= high for label in ramps)
    weak = labels_of(run(short, 300, "revenue_inflation"), "revenue_inflation")
    usual = labels_of(run(BASELINE, 300, "revenue_inflation"), "revenue_inflation")
    boost = lambda ramps: [  # noqa: E731
        float(r.detail["added_inflow"]) / float(r.detail["monthly_inflow"]) for r in ramps
    ]
    assert max(boost(weak)) < min(boost(usual))


def test_script_jitter_moves_machine_made_payments_off_their_period() -> None:
    late = replace(BASELINE, name="late", script_jitter=(60, 90))
    for profile, (low, high) in ((BASELINE, (1, 8)), (late, (60, 90))):
        scripts = labels_of(run(profile, 300, "machine_generated"), "machine_generated")
        assert scripts and all(low <= s.detail["jitter_seconds"] <= high for s in scripts)


def test_benign_twin_shares() -> None:
    knobs = {"new_phone_share": 0.2, "trip_share": 0.2, "shared_device_share": 0.1}
    busy = world_of(replace(BASELINE, name="twins", **knobs))
    usual = world_of(BASELINE)
    for world, phones, trips, shared in ((usual, 20, 20, 12), (busy, 80, 80, 40)):
        assert sum(b.new_phone is not None for b in world.borrowers) == phones
        assert sum(bool(b.legs) for b in world.borrowers) >= trips
        assert sum(b.shared is not None for b in world.borrowers) <= shared
    assert sum(b.shared is not None for b in busy.borrowers) > 2 * sum(
        b.shared is not None for b in usual.borrowers
    )


def test_new_phones_that_draw_a_loan_in_their_first_session() -> None:
    profile = replace(BASELINE, name="busy phones", new_phone_share=0.2, new_phone_drawdown=1.0)
    sim = run(profile)
    logins = values(sim, Source.LOGINS)
    phones = {b.id: b for b in world_of(profile, BASE.borrowers).borrowers if b.new_phone}
    drawn = 0
    for borrower_id, b in phones.items():
        assert b.new_phone is not None
        mine = [v for v in logins if v["borrower_id"] == borrower_id]
        on_new = [v for v in mine if v["device_id"] == b.new_phone.id]
        assert day(on_new[0]) == b.phone_change_day
        actions = {v["action"] for v in mine if day(v) == b.phone_change_day}
        drawn += {"loan_application", "drawdown"} <= actions
    assert drawn == len(phones) > 0
    # The first session of the day takes the new phone, unless it is on the computer that day.
    first = [v for v in logins if v["action"] == "loan_application" and v["borrower_id"] in phones]
    assert sum(v["device_id"] == phones[v["borrower_id"]].new_phone.id for v in first) >= 0.7 * len(
        first
    )


def test_login_hours_move_benign_logins_to_the_night() -> None:
    def night_share(sim: Simulation) -> float:
        labelled = labelled_ids(sim)
        hours = [
            instant(v).hour
            for v in values(sim, Source.LOGINS)
            if v["borrower_id"] not in labelled and v["action"] == "login"
        ]
        return sum(h < 5 for h in hours) / len(hours)

    owls = run(replace(BASELINE, name="owls", login_hours=NIGHT_OWLS))
    assert night_share(owls) > 3 * night_share(run(BASELINE))


def _attack(sim: Simulation, typology: str) -> list[tuple[dict[str, object], list[Value]]]:
    """Each case's detail and the logins of its attacker's device, in time order."""
    logins = values(sim, Source.LOGINS)
    cases = []
    for label in labels_of(sim, typology):
        detail = dict(label.detail)
        mine = [
            v
            for v in logins
            if v["borrower_id"] == label.borrower_id
            and v["device_id"] == detail["device_id"]
            and v["ip"] == detail["ip"]
        ]
        cases.append((detail, mine))
    assert cases
    return cases


def test_replays_from_a_home_address_after_a_few_failures_at_any_hour() -> None:
    profile = replace(
        BASELINE,
        name="home replays",
        replay_network="broadband",
        replay_failures=(2, 3),
        replay_hours=(12, 20),
        takeover_minutes=(8, 20),
    )
    sim = run(profile, cases="account_takeover_device_replay")
    broadband = tuple(f"{c.broadband}." for c in CITIES)
    for detail, attack in _attack(sim, "account_takeover_device_replay"):
        assert str(detail["ip"]).startswith(broadband)
        failures = [v for v in attack if not v["success"]]
        assert 2 <= len(failures) == detail["failed_logins"] <= 3
        assert 12 <= instant(failures[0]).hour <= 20
        success, change, drawdown = (instant(v) for v in attack if v["success"])
        assert change - success <= timedelta(minutes=8)
        assert drawdown - success <= timedelta(minutes=20)
    for detail, _ in _attack(
        run(BASELINE, cases="account_takeover_device_replay"), "account_takeover_device_replay"
    ):
        assert not str(detail["ip"]).startswith(broadband)


def test_phished_takeovers_succeed_at_the_first_try_from_a_new_device_and_address() -> None:
    assert not labels_of(run(BASELINE), "account_takeover_phished")
    profile = profile_named("noisy-payers")
    sim = run(profile, cases="account_takeover_phished")
    logins = values(sim, Source.LOGINS)
    for detail, attack in _attack(sim, "account_takeover_phished"):
        assert detail["failed_logins"] == 0
        assert [v["action"] for v in attack] == ["login", "payout_account_change", "drawdown"]
        assert all(v["success"] for v in attack)
        success, _, drawdown = (instant(v) for v in attack)
        assert drawdown - success <= timedelta(minutes=profile.takeover_minutes[1])
        victim = attack[0]["borrower_id"]
        before = [v for v in logins if v["borrower_id"] == victim and instant(v) < success]
        assert before
        assert detail["device_id"] not in {v["device_id"] for v in before}
        assert detail["ip"] not in {v["ip"] for v in before}


def test_every_shipped_profile_plants_its_cases() -> None:
    for profile in PROFILES.values():
        world = world_of(profile, 300)
        typologies = defaultdict(int)
        for _, typology, _, _ in world.labels:
            typologies[typology] += 1
        phished = typologies["account_takeover_phished"]
        assert (phished == 0) if profile.case_rate("account_takeover_phished") == 0 else phished
        assert typologies["account_takeover_device_replay"] and typologies["missed_installment"]
