"""Settings: each environment variable declared once, with its default and meaning."""

from __future__ import annotations

import dataclasses
import re

import pytest

from streams.settings import Setting, Settings
from topics import TopicNames

DECLARED = Settings.declared()
OWN = [s for s in DECLARED if not s.name.startswith("topics.")]


def test_every_setting_has_an_env_name_and_a_meaning() -> None:
    for declared in DECLARED:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", declared.env), declared
        assert declared.meaning.strip().endswith("."), declared
        assert isinstance(declared.default, str | int | float | bool), declared


def test_names_and_env_names_are_unique() -> None:
    envs = [s.env for s in DECLARED]
    names = [s.name for s in DECLARED]
    assert len(envs) == len(set(envs))
    assert len(names) == len(set(names))


def test_every_field_is_declared() -> None:
    """A field added without ``setting()`` would be a setting nobody can set or read about."""
    fields = {f.name for f in dataclasses.fields(Settings)} - {"topics"}
    assert {s.name for s in OWN} == fields
    topics = {s.name for s in DECLARED} - fields
    assert topics == {f"topics.{name}" for name in TopicNames.__dataclass_fields__}


def test_the_listing_shows_the_defaults() -> None:
    defaults = Settings()
    for declared in OWN:
        assert getattr(defaults, declared.name) == declared.default
    for declared in DECLARED:
        if declared.name.startswith("topics."):
            assert getattr(defaults.topics, declared.name.split(".", 1)[1]) == declared.default


def test_the_names_keep_their_spelling() -> None:
    # Deployments set these: renaming one silently drops a platform's setting.
    envs = Settings().environment_variables
    assert envs[:2] == ("KAFKA_BOOTSTRAP", "REDIS_URL")
    assert all(e.startswith("LW_") for e in envs[2:])
    assert "LW_TOPIC_TRANSACTIONS" in envs and "LW_BATCH_SIZE" in envs
    assert envs == tuple(s.env for s in DECLARED)


def _other(value: str | int | float | bool) -> str:
    """A value of the same type as ``value`` and different from it, as the environment has it."""
    if isinstance(value, bool):
        return "0" if value else "1"
    if isinstance(value, int | float):
        return str(value + 3)
    return value + "-other"


@pytest.mark.parametrize("declared", DECLARED, ids=lambda s: s.env)
def test_each_variable_sets_its_field(declared: Setting) -> None:
    settings = Settings.from_env({declared.env: _other(declared.default)})
    owner: object = settings
    name = declared.name
    if name.startswith("topics."):
        owner, name = settings.topics, name.split(".", 1)[1]
    value = getattr(owner, name)
    assert value != declared.default
    assert type(value) is type(declared.default)
    if owner is settings:  # and nothing else changed
        assert dataclasses.replace(settings, **{name: declared.default}) == Settings()


@pytest.mark.parametrize("declared", OWN, ids=lambda s: s.env)
def test_an_empty_variable_means_the_default(declared: Setting) -> None:
    assert Settings.from_env({declared.env: ""}) == Settings()


def test_numbers_are_parsed() -> None:
    settings = Settings.from_env({"LW_BATCH_SIZE": "7", "LW_IDLE_STREAM_SECONDS": "2.5"})
    assert (settings.batch_size, settings.idle_stream_seconds) == (7, 2.5)
    with pytest.raises(ValueError):
        Settings.from_env({"LW_BATCH_SIZE": "seven"})


@pytest.mark.parametrize(("raw", "on"), [(" Off ", False), ("YES", True), ("  ", True)])
def test_a_switch_is_a_word_of_two_lists_or_blank(raw: str, on: bool) -> None:
    assert Settings.from_env({"LW_MASK_PERSONAL_DATA": raw}).mask_personal_data is on


def test_a_mistyped_switch_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"LW_MASK_PERSONAL_DATA='ofF!'"):
        Settings.from_env({"LW_MASK_PERSONAL_DATA": "ofF!"})


def test_the_privacy_key_stays_out_of_repr() -> None:
    settings = Settings.from_env({"LW_PRIVACY_KEY": "a-secret-key"})
    assert settings.privacy_key == "a-secret-key"
    assert "a-secret-key" not in repr(settings)
    assert "privacy_key" not in repr(settings)


def test_overrides_win_and_none_means_no_override() -> None:
    env = {"LW_PARTITIONS": "4", "KAFKA_BOOTSTRAP": "kafka:9092"}
    settings = Settings.from_env(env, partitions=12, broker=None)
    assert settings.partitions == 12
    assert settings.broker == "kafka:9092"


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_HOT_STATES", "17")
    monkeypatch.setenv("LW_TOPIC_LOGINS", "platform.logins")
    settings = Settings.from_env()
    assert settings.hot_states == 17
    assert settings.topics.logins == "platform.logins"
