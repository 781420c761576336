"""Personal data masked in alerts and log lines: keyed hashes, truncated IPs, the opt-out."""

from __future__ import annotations

import doctest
import io
import logging
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import pytest
from mode.utils.logging import ExtensionFormatter

import streams.privacy
from detectors import personal
from detectors.engine import Engine
from detectors.impossible_travel import ImpossibleTravelDetector
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from sim import SimulationConfig, simulate
from streams.lab.replay import replay
from streams.ops.arguments import settings_from
from streams.ops.cli import build_parser
from streams.privacy import (
    DEVELOPMENT_KEY,
    Masker,
    install_log_masking,
    startup_warnings,
)
from streams.settings import Settings
from tests.detectors.test_detector_contract import DETECTORS, _inputs, _prepared_states
from topics.codec import encode_alert
from topics.records import Alert

KEY = b"0123456789abcdef0123456789abcdef"
MASKER = Masker(KEY)
#: Fields of the input records that name a person or their account.
PERSONAL_FIELDS = ("borrower_id", "account_id", "counterparty_id", "device_id", "ip", "user_id")


def personal_values(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every personal value in input records (event dicts, or simulation records that wrap
    them in ``value``)."""
    values = set()
    for record in records:
        event = record.get("value", record)
        values.update(str(event[name]) for name in PERSONAL_FIELDS if event.get(name))
    return values


def raw_values_in(text: str, values: Iterable[str]) -> set[str]:
    """The ``values`` that stand whole in ``text``: not inside a longer id, and an IP not as
    its own truncation (``203.0.113.0`` in ``203.0.113.0/24``)."""
    candidates = sorted(values, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w.-])(?:" + "|".join(map(re.escape, candidates)) + r")(?![\w-]|\.\d|/\d)"
    )
    return set(pattern.findall(text))


def _encoded(alerts: Iterable[Alert]) -> str:
    return b"\n".join(encode_alert(alert) for alert in alerts).decode()


# --- the keyed hash ------------------------------------------------------------------------


def test_the_hash_is_keyed_and_stable() -> None:
    first = MASKER.borrower("b-00022")

    assert re.fullmatch(r"h-[0-9a-f]{20}", first)
    assert first == Masker(KEY).borrower("b-00022")
    assert first != Masker(b"another key of the same length!!").borrower("b-00022")
    assert first != MASKER.borrower("b-00023")
    # Devices, accounts and counterparties hash the same way: one id, one hash, everywhere.
    assert MASKER.pseudonym("b-00022") == first


def test_the_development_key_is_used_without_a_platform_key() -> None:
    assert Masker.from_settings(Settings()).key == DEVELOPMENT_KEY
    platform = Masker.from_settings(Settings(privacy_key="k" * 64))
    assert platform.key == b"k" * 64 and platform.enabled
    assert not Masker.from_settings(Settings(mask_personal_data=False)).enabled


def test_the_key_is_never_shown() -> None:
    assert "secret-key" not in repr(Settings(privacy_key="secret-key"))
    assert "secret-key" not in repr(Masker(b"secret-key"))


# --- IPs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("10.1.2.3", "10.1.2.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("2001:DB8:1234:5678:9abc:def0:1234:5678", "2001:db8:1234::/48"),
        ("::ffff:203.0.113.7", "203.0.113.0/24"),
        ("fe80::1%eth0", "fe80::/48"),
    ],
)
def test_ips_are_truncated(raw: str, masked: str) -> None:
    assert MASKER.ip(raw) == masked


def test_a_value_that_is_no_ip_is_hashed() -> None:
    assert MASKER.ip("unknown") == MASKER.pseudonym("unknown")


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("IP 27.154.95.124 never used before", "IP 27.154.95.0/24 never used before"),
        ("from 203.0.113.9.", "from 203.0.113.0/24."),
        ("(203.0.113.9, 198.51.100.7)", "(203.0.113.0/24, 198.51.100.0/24)"),
        ("IP 2001:db8:85a3::8a2e:370:7334 failed", "IP 2001:db8:85a3::/48 failed"),
        ("at [2001:db8::1]:443", "at [2001:db8::/48]:443"),
        ("ip:203.0.113.9", "ip:203.0.113.0/24"),
        ("connecting to 203.0.113.9:6379", "connecting to 203.0.113.0/24:6379"),
        # Not addresses: a version, a time, a date, a number, an address already truncated.
        ("app LendApp/5.2.4.1 (Android 14)", "app LendApp/5.2.4.1 (Android 14)"),
        ("at 09:43:35 on 2026-02-01T09:43:35+00:00", "at 09:43:35 on 2026-02-01T09:43:35+00:00"),
        ("205,300.00 in 2.4 h, 1.2.3", "205,300.00 in 2.4 h, 1.2.3"),
        ("IP 203.0.113.0/24 and 2001:db8::/48", "IP 203.0.113.0/24 and 2001:db8::/48"),
        ("999.1.1.1", "999.1.1.1"),
    ],
)
def test_ips_in_free_text_are_truncated(raw: str, masked: str) -> None:
    assert MASKER.text(raw) == masked
    assert MASKER.text(masked) == masked  # masking twice changes nothing


def test_known_ids_are_replaced_where_they_stand_whole() -> None:
    known = {"b-1": "h-one", "acct-1": "h-acct"}

    assert MASKER.text("b-1, b-10 and lb-1 sent to acct-1→acct-1", known) == (
        "h-one, b-10 and lb-1 sent to h-acct→h-acct"
    )


# --- alerts --------------------------------------------------------------------------------


async def _scenario_alerts() -> tuple[list[Alert], set[str]]:
    """Every detector's alerts in the shared contract scenario, and its personal values."""
    engine = Engine(Thresholds(), _prepared_states(), MemoryCrossIndex())
    alerts: list[Alert] = []
    inputs = _inputs()
    for item in inputs:
        alerts += (await engine.process([item])).alerts
    return alerts, personal_values(item.record.asdict() for item in inputs)


@pytest.fixture(scope="module")
async def simulated() -> tuple[list[Alert], set[str]]:
    """Alerts of a small simulation (realistic ids: b-00022, acct-00022-1, dev-…, public
    IPs) replayed, and the personal values of its records."""
    simulation = simulate(SimulationConfig(borrowers=60, days=45, seed=2))
    lines = [(n, orjson.dumps(r)) for n, r in enumerate(simulation.records, start=1)]
    _, alerts = await replay(lines, partitions=4)
    return alerts, personal_values(simulation.records)


async def test_no_raw_personal_value_is_left_in_masked_alerts_of_a_simulation(
    simulated: tuple[list[Alert], set[str]],
) -> None:
    alerts, personal = simulated
    _assert_simulation_masked(alerts, personal)


async def test_every_detector_of_the_contract_scenario_is_masked() -> None:
    alerts, personal = await _scenario_alerts()
    assert {alert.detector for alert in alerts} == {d.name for d in DETECTORS}
    # One-letter ids ("a", "A") cannot be told from words; the simulation test has real ids.
    searched = {value for value in personal if len(value) >= 3}

    for alert in alerts:
        masked = MASKER.alert(alert)
        text = encode_alert(masked).decode()
        assert raw_values_in(text, searched) == set(), text
        assert masked.borrower_id == MASKER.borrower(alert.borrower_id)


async def test_a_masked_alert_says_the_same_with_hashes(
    simulated: tuple[list[Alert], set[str]],
) -> None:
    alerts, _ = simulated
    ring = next(a for a in alerts if a.detector == "device_ring")

    masked = MASKER.alert(ring)

    device = ring.episode.removeprefix("device:")
    assert masked.episode == "device:" + MASKER.pseudonym(device)
    assert MASKER.borrower(ring.borrower_id) in masked.reasons[0].message
    assert masked.reasons[0].observed == ring.reasons[0].observed  # a count stays a count
    assert masked.evidence == ring.evidence  # event ids are the platform's record ids
    assert (masked.ts, masked.score, masked.severity, masked.category) == (
        ring.ts,
        ring.score,
        ring.severity,
        ring.category,
    )


async def test_the_alert_id_is_keyed_and_stable(
    simulated: tuple[list[Alert], set[str]],
) -> None:
    alerts, _ = simulated
    alert = alerts[0]

    masked = MASKER.alert(alert)

    assert re.fullmatch(r"[0-9a-f]{32}", masked.alert_id)
    assert masked.alert_id != alert.alert_id
    assert masked.alert_id == Masker(KEY).alert(alert).alert_id  # consumers dedupe on it
    assert masked.alert_id != Masker(b"x" * 32).alert(alert).alert_id
    assert len({MASKER.alert(a).alert_id for a in alerts}) == len({a.alert_id for a in alerts})


async def test_masking_off_publishes_the_alert_as_it_is(
    simulated: tuple[list[Alert], set[str]],
) -> None:
    alerts, _ = simulated
    off = Masker(KEY, enabled=False)

    for alert in alerts:
        assert off.alert(alert) is alert
    assert off.borrower("b-1") == "b-1" and off.ip("203.0.113.7") == "203.0.113.7"
    assert off.text("IP 203.0.113.7") == "IP 203.0.113.7"
    assert off.log_line("timer x of b-1 failed: KeyError('b-1')") == (
        "timer x of b-1 failed: KeyError('b-1')"
    )


async def test_replay_writes_alerts_masked_as_the_worker_publishes_them() -> None:
    simulation = simulate(SimulationConfig(borrowers=40, days=30, seed=3))
    lines = [(n, orjson.dumps(r)) for n, r in enumerate(simulation.records, start=1)]
    out = io.BytesIO()

    _, alerts = await replay(lines, partitions=4, out=out, masker=MASKER)

    written = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert written and len(written) == len(alerts)
    assert written == [orjson.loads(encode_alert(MASKER.alert(alert))) for alert in alerts]
    assert raw_values_in(out.getvalue().decode(), personal_values(simulation.records)) == set()


def test_coordinates_are_rounded_to_a_district_and_cities_kept() -> None:
    # The episode as impossible_travel makes it: its places marked, not found in the text.
    episode = personal.fill(
        ImpossibleTravelDetector.episodes["travel"],
        origin=personal.place(None, 32.07, 118.80),
        place=personal.place("Chengdu", 30.66, 104.07),
        day="2026-01-01",
    )
    alert = Alert(
        alert_id="a" * 32,
        ts="2026-01-01T00:00:00+00:00",
        emitted_at="2026-01-01T00:00:00+00:00",
        category="abnormal_behaviour",
        detector="impossible_travel",
        severity="high",
        score=0.8,
        borrower_id="b-1",
        reasons=[],
        evidence=["lg-1", "lg-2"],
        detector_version="1",
        thresholds_version="v0",
        episode=episode.render(),
        episode_wording=episode,
    )

    assert alert.episode == "travel:32.07,118.80>Chengdu:2026-01-01"
    assert MASKER.alert(alert).episode == "travel:32.1,118.8>Chengdu:2026-01-01"


# --- reworded messages: masking never depends on the words ---------------------------------

#: Odd separators to glue placeholders with: none is a word character, so a raw value between
#: them still stands whole for :func:`raw_values_in`.
ODD_SEPARATORS = ("|", "→", "::", "><", ",", "@", ";", ")(", "#", "=")


def reworded(template: str, style: int) -> str:
    """``template`` with its words removed and its placeholders reversed, glued by an odd
    separator (each keeps its format spec: a list slot's separator, a number's format)."""
    fields = [
        "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        for _, name, spec, conversion in string.Formatter().parse(template)
        if name is not None
    ]
    glue = ODD_SEPARATORS[style % len(ODD_SEPARATORS)]
    return glue + glue.join(reversed(fields)) + glue if fields else "~"


def test_rewording_drops_the_words_and_reverses_the_placeholders() -> None:
    template = "device {device} was used by {count} borrowers within {days:.1f} days: {who:, }"

    assert reworded(template, 0) == "|{who:, }|{days:.1f}|{count}|{device}|"
    assert reworded(template, 3) == "><{who:, }><{days:.1f}><{count}><{device}><"
    assert reworded("the amount came back smaller only by fees", 0) == "~"


@pytest.fixture
def rewording(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every detector's messages and episode templates reworded (see :func:`reworded`), in
    every detector the engine builds; the reworded templates."""
    templates: set[str] = set()
    for style, kind in enumerate(sorted({type(d) for d in DETECTORS}, key=lambda k: k.name)):
        for attribute in ("messages", "episodes"):
            original: Mapping[str, str] = getattr(kind, attribute)
            changed = {
                key: reworded(template, style + n)
                for n, (key, template) in enumerate(original.items())
            }
            templates.update(changed.values())
            monkeypatch.setattr(kind, attribute, changed)
    return templates


async def test_reworded_messages_of_the_contract_scenario_leak_no_raw_value(
    rewording: set[str],
) -> None:
    alerts, personal_values_seen = await _scenario_alerts()
    assert {alert.detector for alert in alerts} == {d.name for d in DETECTORS}
    searched = {value for value in personal_values_seen if len(value) >= 3}
    for alert in alerts:  # the rewording is what the alerts say
        assert alert.episode_wording is not None
        assert alert.episode_wording.template in rewording
        assert all(r.wording and r.wording.template in rewording for r in alert.reasons)
    # The check can fail: unmasked, the reworded alerts carry the raw values.
    assert raw_values_in(_encoded(alerts), searched) & {"dev-x", "203.0.113.9", "phone-1"}

    for alert in alerts:
        masked = MASKER.alert(alert)
        text = encode_alert(masked).decode()
        assert raw_values_in(text, searched) == set(), text
        assert masked.borrower_id == MASKER.borrower(alert.borrower_id)


async def test_reworded_messages_of_a_simulation_leak_no_raw_value(
    rewording: set[str],
) -> None:
    simulation = simulate(SimulationConfig(borrowers=60, days=45, seed=2))
    lines = [(n, orjson.dumps(r)) for n, r in enumerate(simulation.records, start=1)]
    _, alerts = await replay(lines, partitions=4)
    assert alerts and all(
        alert.episode_wording and alert.episode_wording.template in rewording for alert in alerts
    )
    _assert_simulation_masked(alerts, personal_values(simulation.records))


# --- log lines -----------------------------------------------------------------------------


def test_log_lines_name_no_borrower_and_no_ip() -> None:
    line = (
        "dead-lettered lending.transactions[3]@42: record key 'b-other' does not match "
        "borrower_id 'b-bad'"
    )
    masked = MASKER.log_line(line)
    assert masked == (
        "dead-lettered lending.transactions[3]@42: record key "
        f"'{MASKER.borrower('b-other')}' does not match borrower_id '{MASKER.borrower('b-bad')}'"
    )

    timer = "degraded: delinquency: timer check3|ln-1#2 of b-00022 failed: KeyError('acct-9')"
    assert MASKER.log_line(timer) == (
        f"degraded: delinquency: timer check3|ln-1#2 of {MASKER.borrower('b-00022')} "
        "failed: KeyError(…)"
    )
    error = "dead-lettered t[0]@1: detector error: ValueError('bad ip 203.0.113.7 for dev-1')"
    assert MASKER.log_line(error) == "dead-lettered t[0]@1: detector error: ValueError(…)"


def test_log_lines_keep_the_deployments_own_addresses() -> None:
    line = (
        "degraded: circular_flow: cross-borrower index unavailable: ConnectionError("
        "'Error 111 connecting to 127.0.0.1:6379.'); login from 203.0.113.7 via 10.0.0.5"
    )

    assert MASKER.log_line(line) == line.replace("203.0.113.7", "203.0.113.0/24")


def test_the_log_filter_masks_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "lendwatch-test-privacy"
    install_log_masking(MASKER, [name])
    install_log_masking(MASKER, [name])  # twice masks once
    logger = logging.getLogger(name)
    try:
        with caplog.at_level(logging.INFO, logger=name):
            logger.info(
                "dead-lettered %s: %s",
                "t[0]@1",
                "record key 'b-2' does not match borrower_id 'b-1'",
            )
            try:
                raise RuntimeError("login from 203.0.113.7")
            except RuntimeError:
                logger.exception("could not handle it")
    finally:
        for installed in list(logger.filters):
            logger.removeFilter(installed)

    assert len(logger.filters) == 0
    # The arguments are merged into the message: a formatter that formats them again (Faust's
    # wraps them in a tuple) finds none.
    assert caplog.records[0].args == ()
    assert MASKER.borrower("b-1") in ExtensionFormatter().format(caplog.records[0])
    text = caplog.text
    assert "'b-1'" not in text and "'b-2'" not in text
    assert MASKER.borrower("b-1") in text
    assert "203.0.113.7" not in text and "203.0.113.0/24" in text


def test_masking_off_installs_no_filter() -> None:
    name = "lendwatch-test-privacy-off"
    install_log_masking(Masker(KEY, enabled=False), [name])
    assert logging.getLogger(name).filters == []


# --- settings and flags --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [("", True), ("1", True), ("true", True), ("ON", True), ("0", False), ("false", False)],
)
def test_lw_mask_personal_data(value: str, masked: bool) -> None:
    assert Settings.from_env({"LW_MASK_PERSONAL_DATA": value}).mask_personal_data is masked


def test_a_mistyped_switch_is_refused() -> None:
    with pytest.raises(ValueError, match="LW_MASK_PERSONAL_DATA"):
        Settings.from_env({"LW_MASK_PERSONAL_DATA": "flase"})


def test_the_key_and_the_switch_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"LW_PRIVACY_KEY": "k" * 40})
    assert settings.privacy_key == "k" * 40
    assert {"LW_PRIVACY_KEY", "LW_MASK_PERSONAL_DATA"} <= set(settings.environment_variables)


@pytest.mark.parametrize("command", ["worker", "run", "replay"])
def test_no_mask_opts_out(command: str) -> None:
    extra = ["--input", "in", "--output", "out"] if command == "replay" else []
    parser = build_parser()

    assert settings_from(parser.parse_args([command, *extra])).mask_personal_data
    assert not settings_from(parser.parse_args([command, *extra, "--no-mask"])).mask_personal_data


def test_the_worker_warns_once_about_a_missing_or_short_key_or_masking_off() -> None:
    [missing] = startup_warnings(Settings())
    assert "LW_PRIVACY_KEY is not set" in missing and "guessable" in missing
    [short] = startup_warnings(Settings(privacy_key="short"))
    assert "shorter" in short
    [off] = startup_warnings(Settings(mask_personal_data=False))
    assert "NOT masked" in off
    assert startup_warnings(Settings(privacy_key="k" * 64)) == []


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(streams.privacy).failed == 0


def _assert_simulation_masked(alerts: list[Alert], personal: set[str]) -> None:
    """Unmasked, a simulation's alerts carry every kind of personal value (so the check can
    fail); masked, none, and every detector that alerts in a small simulation took part."""
    leaked = raw_values_in(_encoded(alerts), personal)
    for prefix in ("b-", "acct-", "dev-", "corp-"):
        assert any(value.startswith(prefix) for value in leaked), prefix
    assert any(re.fullmatch(r"[\d.]+", value) for value in leaked)

    masked = _encoded(MASKER.alert(alert) for alert in alerts)

    assert raw_values_in(masked, personal) == set()
    assert {alert.detector for alert in alerts} >= {
        "circular_flow",
        "wash_trading",
        "revenue_inflation",
        "machine_flow",
        "account_takeover",
        "device_ring",
        "impossible_travel",
        "delinquency",
    }
