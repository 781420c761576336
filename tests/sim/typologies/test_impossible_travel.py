"""Impossible travel: a far login within the hour; travellers move at airliner speed."""

from __future__ import annotations

import math
from datetime import timedelta

from sim import Simulation
from tests.sim.helpers import CONFIG, Index, Value, instant, labels_of
from topics.names import Source


def test_impossible_travel_is_a_far_login_within_the_hour_of_one_at_home(
    sim: Simulation, index: Index
) -> None:
    for label in labels_of(sim, "impossible_travel"):
        detail = label.detail
        mine = [v for v in index[Source.LOGINS][label.borrower_id] if v["success"]]
        start, end = instant(label.start), instant(label.end)
        assert {v["geo"]["city"] for v in mine if instant(v) < start} <= {detail["home_city"]}
        (home,) = [v for v in mine if instant(v) == start and v["action"] == "login"]
        (far,) = [v for v in mine if instant(v) == end and v["action"] == "login"]
        assert home["geo"]["city"] == detail["home_city"] != far["geo"]["city"] == detail["city"]
        assert end - start < timedelta(hours=1)
        assert detail["distance_km"] > 1_000


def test_frequent_flyers_move_at_airliner_speed_and_nobody_benign_faster(
    sim: Simulation, index: Index
) -> None:
    windows = {
        label.borrower_id: (instant(label.start), instant(label.end)) for label in sim.labels
    }
    flights = 0
    for borrower_id, logins in index[Source.LOGINS].items():
        # The borrower's own logins: outside the window of any injected case.
        start, end = windows.get(borrower_id, (CONFIG.start, CONFIG.start))
        seen = [
            v
            for v in logins
            if v["success"] and v["action"] == "login" and not start <= instant(v) <= end
        ]
        for before, after in zip(seen, seen[1:], strict=False):
            if before["geo"]["city"] == after["geo"]["city"]:
                continue
            hours = (instant(after) - instant(before)).total_seconds() / 3600
            km = _distance(before["geo"], after["geo"])
            assert km / hours < 800, (borrower_id, before, after)
            if km > 1_000 and timedelta(hours=2) <= timedelta(hours=hours) <= timedelta(hours=4):
                flights += 1
    assert flights >= 1


def _distance(a: Value, b: Value) -> float:
    p1, p2 = math.radians(a["lat"]), math.radians(b["lat"])
    dp, dl = p2 - p1, math.radians(b["lon"] - a["lon"])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))
