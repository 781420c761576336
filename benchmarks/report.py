"""The printed table: every figure beside its target."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from streams.settings import Settings

__all__ = ["Results", "Targets", "render"]


@dataclass(frozen=True)
class Targets:
    worker_vs_faust: float = 0.8
    worker_events_per_second: float = 8_000.0
    two_workers_speedup: float = 1.8
    p99_ms: float = 250.0
    #: Issue 15: the worker's p99 at most this many times the bare forwarder's at the same rate,
    worker_vs_forwarder_p99: float = 2.0
    #: and at most ``p99_ms`` wherever the forwarder's own p99 is at most this.
    forwarder_p99_ms: float = 125.0
    state_bytes: float = 2_048.0
    replay_events_per_second: float = 50_000.0
    first_batch_seconds: float = 10.0


@dataclass
class Results:
    """Every figure of one run; ``None`` where a part did not run."""

    events: int = 0
    borrowers: int = 0
    days: int = 0
    partitions: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    produce_events_per_second: float | None = None
    #: name -> {"events", "seconds", "peak_rss", ...} of (a), (a'), (b), (c), (b2)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, Any] | None = None
    #: The bare forwarder at the latency run's rate: {"n", "p50", "p99", "max", ...}
    forwarder: dict[str, Any] | None = None
    #: (s): {"fresh", "replacement"} seconds from a worker's start to its first batch
    startup: dict[str, float] | None = None
    memory: dict[str, Any] | None = None
    profile: str | None = None
    fetch_wait_ms: int | None = None

    def rate(self, name: str) -> float | None:
        run = self.runs.get(name)
        if not run or not run.get("seconds"):
            return None
        return float(run["events"]) / float(run["seconds"])

    def to_dict(self) -> dict[str, Any]:
        rates = {name: self.rate(name) for name in self.runs}
        return {**self.__dict__, "events_per_second": rates}


#: In-use states a worker keeps decoded at most (LW_HOT_STATES): the memory figure uses it.
HOT_STATES = Settings().hot_states

LABELS = {
    "a": "(a)  aiokafka consume-decode-produce",
    "a'": "(a') bare Faust agent, decode only",
    "b": "(b)  lendwatch worker, all detectors",
    "bf": "(bf) (b) with its input through an agent",
    "c": "(c)  detectors alone (replay drive)",
    "cs": "(cs) (c) with every detector in shadow",
    "b2": "(b2) two lendwatch workers, one group",
    "r1": "(r1) `lendwatch replay`, whole command",
    "rN": "(rN) (r1) in one process per CPU",
}


def _int(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.0f}"


def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f} MiB"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def _fixed(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else f"{value:{spec}}"


def _mark(value: float | None, target: float, *, at_most: bool = False) -> str:
    if value is None:
        return "–"
    return "✓" if (value <= target if at_most else value >= target) else "✗"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:,.0f} ms"


def render(results: Results, targets: Targets | None = None) -> str:
    t = targets or Targets()
    lines = _title(results)
    lines += _runs(results, t)
    lines += _differences(results)
    lines += _batches(results)
    if results.fetch_wait_ms is not None:
        lines.append(
            f"  workers ran with fetch_max_wait_ms={results.fetch_wait_ms} "
            "(benchmarks.fetch_wait), not Faust's 1500"
        )
    if results.profile:
        lines.append(f"  (b) ran under cProfile ({results.profile}): its rate is not comparable")
    lines += _ratios(results)
    if results.startup is not None:
        lines += _startup(results.startup, t)
    if results.latency is not None:
        lines += _latency(results.latency, results.rate("b"), t)
        if results.forwarder is not None:
            lines += _forwarder(results.forwarder, results.latency, t)
    if results.memory is not None:
        lines += _memory(results.memory, t)
    return "\n".join(lines) + "\n"


def _title(results: Results) -> list[str]:
    lines = [
        f"lendwatch benchmarks: {results.events:,} simulated events "
        f"({results.borrowers:,} borrowers × {results.days} days; "
        + ", ".join(f"{k} {v:,}" for k, v in results.by_source.items())
        + f"), {results.partitions} partitions"
        if results.events
        else f"lendwatch benchmarks, {results.partitions} partitions"
    ]
    if results.produce_events_per_second:
        lines.append(f"pre-produced to Tansu at {_int(results.produce_events_per_second)} events/s")
    lines.append("")
    return lines


def _runs(results: Results, t: Targets) -> list[str]:
    """One row per throughput run: its rate, memory and ratio to (b), beside its target."""
    header = f"{'':40} {'events/s':>9} {'peak RSS':>10} {'(b)/this':>9}   target"
    lines = [header, "-" * len(header)] if results.runs else []
    b = results.rate("b")
    for name in ("a", "a'", "b", "bf", "c", "cs", "b2", "r1", "rN"):
        run = results.runs.get(name)
        if run is None:
            continue
        rate = results.rate(name)
        rss = run.get("peak_rss")
        rss_text = " + ".join(_mib(r) for r in rss) if isinstance(rss, list) else _mib(rss)
        ratio = _ratio(b, rate) if name not in ("b", "b2") else None
        target = _target(results, name, run, t)
        lines.append(
            f"{LABELS[name]:40} {_int(rate):>9} {rss_text:>10} {_fixed(ratio):>9}   {target}"
            f"{_alerts(results, name, run)}"
        )
    return lines


def _target(results: Results, name: str, run: dict[str, Any], t: Targets) -> str:
    """The target column of one run's row: its figure against the issue's target."""
    rate, b = results.rate(name), results.rate("b")
    if name == "a'":
        ratio = _ratio(b, rate)
        return f"(b)/(a') ≥ {t.worker_vs_faust:.2f} {_mark(ratio, t.worker_vs_faust)}"
    if name == "b":
        return f"≥ {t.worker_events_per_second:,.0f} {_mark(rate, t.worker_events_per_second)}"
    if name == "bf":
        # Issue 13: the agent path is kept only if it costs at most a tenth of the reader's.
        return f"(bf)/(b) {_fixed(_ratio(rate, b))}; ≥ 0.90 {_mark(_ratio(rate, b), 0.9)}"
    if name == "cs":
        cost = _ratio(rate, results.rate("c"))
        return f"{_fixed(cost)} × (c)   [{run.get('shadow_alerts', 0):,} shadow alerts]"
    if name in ("r1", "rN"):
        return _replay_target(results, name, run, t)
    if name == "b2":
        speedup = _ratio(rate, b)
        return (
            f"{_fixed(speedup)} × (b); ≥ {t.two_workers_speedup:.1f} "
            f"{_mark(speedup, t.two_workers_speedup)}"
        )
    return ""


def _replay_target(results: Results, name: str, run: dict[str, Any], t: Targets) -> str:
    """The whole replay command against (c), the detectors alone of the same run, and
    (rN)'s output against (r1)'s."""
    rate = results.rate(name)
    text = (
        f"{_fixed(_ratio(rate, results.rate('c')))} × (c); ≥ {t.replay_events_per_second:,.0f} "
        f"{_mark(rate, t.replay_events_per_second)}"
    )
    one = results.runs.get("r1")
    if name == "rN":
        text += f"; {run['processes']} processes"
        if one is not None:
            text += f", {_fixed(_ratio(rate, results.rate('r1')))} × (r1), output " + (
                "identical ✓" if run["sha256"] == one["sha256"] else "DIFFERENT ✗"
            )
    return text


def _alerts(results: Results, name: str, run: dict[str, Any]) -> str:
    """How many alerts a run raised, and how many of them the detectors alone (c) raised too."""
    if run.get("alerts") is None:
        return ""
    text = f"   [{run['alerts']:,} alerts"
    replayed = results.runs.get("c", {}).get("alert_ids")
    if name != "c" and replayed is not None and run.get("alert_ids") is not None:
        common = len(set(run["alert_ids"]) & set(replayed))
        text += f", {common:,} of them also in (c)"
    return text + "]"


def _differences(results: Results) -> list[str]:
    """A few alerts the workers and the detectors alone disagree on, and alerts sent again."""
    lines: list[str] = []
    replayed = results.runs.get("c", {}).get("alert_ids")
    for name in ("b", "bf", "b2"):
        live = results.runs.get(name, {}).get("alert_ids")
        if replayed is None or live is None:
            continue
        for label, ids, source in (
            (f"{name} only", set(live) - set(replayed), live),
            (f"c only (not in {name})", set(replayed) - set(live), replayed),
        ):
            for alert_id in sorted(ids, key=source.__getitem__)[:8]:
                lines.append(f"  {label}: {source[alert_id]}")
        for text in sorted(text for text in live.values() if text.endswith(" times)"))[:8]:
            lines.append(f"  {name} again: {text}")
    return lines


def _batches(results: Results) -> list[str]:
    """The workers' batches, changelog records and Redis index."""
    lines = []
    for name in ("b", "bf", "b2"):
        run = results.runs.get(name)
        if run and run.get("batches"):
            events = run["total_events"]
            lines.append(
                f"  {name}: {run['batches']:,} batches, {events / run['batches']:,.1f} events "
                f"a batch; {run['changelog_records']:,} state changelog records, "
                f"{run['changelog_records'] / events:.2f} an event; Redis index "
                f"{run['redis_keys']:,} keys, {run['redis_bytes'] / 2**20:,.1f} MiB"
            )
    return lines


def _ratios(results: Results) -> list[str]:
    b = results.rate("b")
    if b is None:
        return []
    return [
        "",
        "ratios: "
        + "   ".join(
            f"(b)/{name} {_fixed(_ratio(b, results.rate(name.strip('()'))))}"
            for name in ("(a)", "(a')", "(c)")
        ),
    ]


def _startup(startup: dict[str, float], t: Targets) -> list[str]:
    """(s): start to first applied batch, fresh and as a killed worker's replacement."""
    bar = t.first_batch_seconds
    return [
        "",
        "start-up to the first applied batch (static membership, 6 s session):",
        f"  a new group's worker            {startup['fresh']:5.1f} s   ≤ {bar:.0f} s "
        f"{_mark(startup['fresh'], bar, at_most=True)}",
        f"  a killed worker's replacement   {startup['replacement']:5.1f} s   ≤ {bar:.0f} s "
        f"{_mark(startup['replacement'], bar, at_most=True)}",
    ]


def _latency(latency: dict[str, Any], b: float | None, t: Targets) -> list[str]:
    """Event→alert latency of (b) at a paced rate, for alerts of events and of timers."""
    from benchmarks.worker import Latency

    event = latency["event_alerts"]
    timer = latency["timer_alerts"]
    p50, p99 = Latency.percentile(event, 0.5), Latency.percentile(event, 0.99)
    met = _mark(None if p99 is None else p99 * 1000, t.p99_ms, at_most=True)
    few = "   (few alerts: p99 is about the max)" if 0 < len(event) < 100 else ""
    timer_p50, timer_p99 = Latency.percentile(timer, 0.5), Latency.percentile(timer, 0.99)
    emitted = latency["event_emitted"]
    emitted_p50 = Latency.percentile(emitted, 0.5)
    emitted_p99 = Latency.percentile(emitted, 0.99)
    lag = latency["lag"]
    share = f"{latency['rate'] / b:.0%} of (b)" if b else "--rate"
    lines = [
        "",
        f"event→alert latency of (b), paced at {_int(latency['rate'])} events/s "
        f"({share}; achieved {_int(latency['achieved_rate'])}), "
        f"{latency['events']:,} events, peak RSS {_mib(latency['peak_rss'])}:",
        f"  alerts an event raised    n={len(event):<5} p50 {_ms(p50)}   p99 {_ms(p99)}"
        f"   max {_ms(max(event) if event else None)}   p99 ≤ {t.p99_ms:.0f} ms {met}{few}",
        f"    of which until the worker stamped emitted_at: p50 "
        f"{_ms(emitted_p50)}   p99 {_ms(emitted_p99)}"
        f";  consumer lag while producing: mean {_int(sum(lag) / len(lag) if lag else None)}"
        f", max {_int(max(lag) if lag else None)} events",
        f"  alerts a timer raised     n={len(timer):<5} p50 {_ms(timer_p50)}"
        f"   p99 {_ms(timer_p99)}"
        "   (from the first event past the alert's time; event time must pass all streams)",
    ]
    if latency.get("unmatched"):
        lines.append(f"  {latency['unmatched']} alerts on warm-up events only, not timed")
    return lines


def _forwarder(forwarder: dict[str, Any], latency: dict[str, Any], t: Targets) -> list[str]:
    """The bare forwarder's latency at (b)'s paced rate, and (b)'s p99 against it: the
    broker's share of the event→alert latency and the worker's, as separate figures."""
    from benchmarks.worker import Latency

    worker_p99 = Latency.percentile(latency["event_alerts"], 0.99)
    ratio = _ratio(worker_p99, forwarder["p99"])
    bound = t.worker_vs_forwarder_p99
    loads = f"load {_fixed(latency.get('load'), '.1f')} after (b)'s run, "
    loads += f"{_fixed(forwarder.get('load'), '.1f')} after this one"
    lines = [
        f"  bare aiokafka forwarder   n={forwarder['n']:<5,} p50 {_ms(forwarder['p50'])}"
        f"   p99 {_ms(forwarder['p99'])}   max {_ms(forwarder['max'])}"
        f"   (every record: the same records at the same rate, on topics of its own; achieved "
        f"{_int(forwarder['achieved_rate'])}, peak RSS {_mib(forwarder['peak_rss'])})",
        f"  (b)'s p99 / forwarder's   {_fixed(ratio)}   ≤ {bound:.0f} "
        f"{_mark(ratio, bound, at_most=True)};   {_floor_target(worker_p99, forwarder['p99'], t)}"
        f"   ({loads})",
    ]
    if forwarder.get("missing"):
        lines.append(f"  {forwarder['missing']:,} forwarded records never arrived, not timed")
    return lines


def _floor_target(worker_p99: float | None, forwarder_p99: float | None, t: Targets) -> str:
    """Issue 15's absolute bound: (b)'s p99 ≤ 250 ms, where the forwarder's is ≤ 125 ms."""
    if worker_p99 is None or forwarder_p99 is None:
        return f"(b) p99 ≤ {t.p99_ms:.0f} ms where the forwarder's ≤ {t.forwarder_p99_ms:.0f} ms –"
    if forwarder_p99 * 1000 > t.forwarder_p99_ms:
        return (
            f"forwarder p99 > {t.forwarder_p99_ms:.0f} ms: "
            f"the {t.p99_ms:.0f} ms bound does not apply"
        )
    met = _mark(worker_p99 * 1000, t.p99_ms, at_most=True)
    return f"forwarder p99 ≤ {t.forwarder_p99_ms:.0f} ms, so (b) p99 ≤ {t.p99_ms:.0f} ms {met}"


def _memory(memory: dict[str, Any], t: Targets) -> list[str]:
    """State per borrower: its changelog record, at rest and decoded in the worker."""
    changelog = memory["changelog_bytes"]
    rest = memory["rest_bytes"]
    process = memory["process_bytes"]
    hot = HOT_STATES * process
    return [
        "",
        f"state per borrower ({memory['borrowers']:,} borrowers after "
        f"{memory['days']} simulated days, {memory['events']:,} events; "
        f"replay peak RSS {_mib(memory['peak_rss'])}):",
        f"  changelog record, BorrowerState.to_bytes {changelog:>7,.0f} B"
        f"  = {changelog * 10_000 / 1e6:6.1f} MB per 10,000 borrowers"
        f"   ≤ {t.state_bytes / 1024:.0f} KiB {_mark(changelog, t.state_bytes, at_most=True)}"
        f"   (largest {memory['changelog_max_bytes']:,} B;"
        f" {memory['json_bytes']:,.0f} B of JSON)",
        f"  in process, a borrower at rest (record)  {rest:>7,.0f} B"
        f"  = {rest * 10_000 / 1e6:6.1f} MB per 10,000 borrowers"
        f"   ≤ {t.state_bytes / 1024:.0f} KiB {_mark(rest, t.state_bytes, at_most=True)}",
        f"  in process, a borrower in use (decoded)  {process:>7,.0f} B"
        f"  × at most LW_HOT_STATES={HOT_STATES:,} in use = {hot / 1e6:.1f} MB at most",
    ]
