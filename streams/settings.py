"""Worker settings in one typed object, read from ``LW_*``, ``KAFKA_BOOTSTRAP``, ``REDIS_URL``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from topics import TopicNames

__all__ = ["Settings"]


def _int(env: dict[str, str], name: str, default: int) -> int:
    return int(env[name]) if env.get(name) else default


def _float(env: dict[str, str], name: str, default: float) -> float:
    return float(env[name]) if env.get(name) else default


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    """A switch: ``1/true/yes/on`` or ``0/false/no/off``; anything else is refused, since a
    mistyped privacy switch must not silently mean either."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise ValueError(f"{name}={env[name]!r}: expected one of 1, true, yes, on, 0, false, no, off")


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to know; every field has an environment variable."""

    #: Kafka bootstrap, ``kafka://host:port`` or ``host:port[,host:port]`` (KAFKA_BOOTSTRAP).
    broker: str = "kafka://127.0.0.1:9092"
    #: Redis URL (REDIS_URL).
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Consumer group and state-topic prefix (LW_APP_ID).
    app_id: str = "lendwatch"
    #: Partitions of every topic the pipeline creates; replay uses it too (LW_PARTITIONS).
    partitions: int = 8
    #: Most input records in one batch (LW_BATCH_SIZE); a batch is whatever has arrived.
    batch_size: int = 500
    #: Longest a consumer fetch waits for records on the broker (LW_FETCH_MAX_WAIT_MS). Apache
    #: Kafka answers as soon as records arrive; Tansu holds an empty fetch about half of this,
    #: so it bounds event latency on the embedded broker. Faust's own value is 1500.
    fetch_max_wait_ms: int = 100
    #: Bytes a consumer fetch waits for, up to the wait above (LW_FETCH_MIN_BYTES). 1 answers
    #: at once; more means fewer, fuller fetches, which a busy broker serves with less work.
    fetch_min_bytes: int = 1
    #: Changed borrower states are written to the changelog together this often, and their
    #: input records committed after (LW_STATE_FLUSH_MS). Longer writes fewer records; a crash
    #: redelivers up to this much input (alerts are not sent twice).
    state_flush_ms: int = 1000
    #: Borrower states kept decoded, the most recently used (LW_HOT_STATES); the rest are kept
    #: as their ~2 KB changelog records, a tenth of their decoded size, and decoded on use.
    hot_states: int = 2_000
    #: Producer linger: lets alert sends share requests (LW_PRODUCER_LINGER_MS).
    producer_linger_ms: int = 5
    #: An input partition silent this long no longer holds event time back (LW_IDLE_STREAM_SECONDS).
    idle_stream_seconds: float = 30.0
    #: Consumer session timeout (LW_SESSION_TIMEOUT_SECONDS). Tansu holds a group join for
    #: half of it, so the embedded setup uses a short one; Faust's 60 s suits production.
    session_timeout_seconds: float = 60.0
    #: Prefix of the Redis keys the pipeline owns (LW_REDIS_PREFIX).
    redis_prefix: str = "lw"
    #: Faust web port for the worker, 0 to pick a free one (LW_WEB_PORT).
    web_port: int = 6066
    #: The platform's secret key for the keyed hashes of personal ids in alerts and logs
    #: (LW_PRIVACY_KEY). Empty: a fixed development key, whose hashes anyone can reverse by
    #: hashing candidate ids; the worker warns. Kept out of ``repr`` so it is never logged.
    privacy_key: str = field(default="", repr=False)
    #: Mask personal data in alerts and logs (LW_MASK_PERSONAL_DATA, default on; ``0`` or
    #: ``false`` for internal deployments that need the raw ids). See streams/privacy.py.
    mask_personal_data: bool = True
    topics: TopicNames = field(default_factory=TopicNames)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ) if env is None else env
        defaults = cls()
        values: dict[str, object] = {
            "broker": env.get("KAFKA_BOOTSTRAP") or defaults.broker,
            "redis_url": env.get("REDIS_URL") or defaults.redis_url,
            "app_id": env.get("LW_APP_ID") or defaults.app_id,
            "partitions": _int(env, "LW_PARTITIONS", defaults.partitions),
            "batch_size": _int(env, "LW_BATCH_SIZE", defaults.batch_size),
            "fetch_max_wait_ms": _int(env, "LW_FETCH_MAX_WAIT_MS", defaults.fetch_max_wait_ms),
            "fetch_min_bytes": _int(env, "LW_FETCH_MIN_BYTES", defaults.fetch_min_bytes),
            "state_flush_ms": _int(env, "LW_STATE_FLUSH_MS", defaults.state_flush_ms),
            "hot_states": _int(env, "LW_HOT_STATES", defaults.hot_states),
            "producer_linger_ms": _int(env, "LW_PRODUCER_LINGER_MS", defaults.producer_linger_ms),
            "idle_stream_seconds": _float(
                env, "LW_IDLE_STREAM_SECONDS", defaults.idle_stream_seconds
            ),
            "session_timeout_seconds": _float(
                env, "LW_SESSION_TIMEOUT_SECONDS", defaults.session_timeout_seconds
            ),
            "redis_prefix": env.get("LW_REDIS_PREFIX") or defaults.redis_prefix,
            "web_port": _int(env, "LW_WEB_PORT", defaults.web_port),
            "privacy_key": env.get("LW_PRIVACY_KEY") or defaults.privacy_key,
            "mask_personal_data": _bool(env, "LW_MASK_PERSONAL_DATA", defaults.mask_personal_data),
            "topics": TopicNames.from_env(env),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def broker_url(self) -> str:
        """The broker as Faust wants it: ``kafka://host:port;host:port``."""
        hosts = self.broker.removeprefix("kafka://").replace(";", ",")
        return "kafka://" + ";".join(h.strip() for h in hosts.split(",") if h.strip())

    @property
    def bootstrap_servers(self) -> str:
        """The broker as aiokafka wants it: ``host:port,host:port``."""
        return self.broker_url.removeprefix("kafka://").replace(";", ",")

    @property
    def environment_variables(self) -> tuple[str, ...]:
        """Every environment variable :meth:`from_env` reads (the compose test checks these)."""
        names = [
            "KAFKA_BOOTSTRAP",
            "REDIS_URL",
            "LW_APP_ID",
            "LW_PARTITIONS",
            "LW_BATCH_SIZE",
            "LW_FETCH_MAX_WAIT_MS",
            "LW_FETCH_MIN_BYTES",
            "LW_STATE_FLUSH_MS",
            "LW_HOT_STATES",
            "LW_PRODUCER_LINGER_MS",
            "LW_IDLE_STREAM_SECONDS",
            "LW_SESSION_TIMEOUT_SECONDS",
            "LW_REDIS_PREFIX",
            "LW_WEB_PORT",
            "LW_PRIVACY_KEY",
            "LW_MASK_PERSONAL_DATA",
        ]
        names += [f"LW_TOPIC_{name.upper()}" for name in TopicNames.__dataclass_fields__]
        return tuple(names)
