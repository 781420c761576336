"""Worker settings in one typed object, read from ``LW_*``, ``KAFKA_BOOTSTRAP``, ``REDIS_URL``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from topics import TopicNames

__all__ = ["Setting", "Settings", "setting"]

T = TypeVar("T", str, int, float, bool)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _switch(name: str, raw: str, default: bool) -> bool:
    """A switch: ``1/true/yes/on`` or ``0/false/no/off``; anything else is refused, since a
    mistyped privacy switch must not silently mean either."""
    word = raw.strip().lower()
    if not word:
        return default
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"{name}={raw!r}: expected one of 1, true, yes, on, 0, false, no, off")


@dataclass(frozen=True)
class Setting:
    """One environment variable of :class:`Settings`: the field it sets, its default, its
    meaning. The value's type is the default's: a string, an integer, a float or a switch."""

    #: The field of :class:`Settings` (``topics.<name>`` for a topic name).
    name: str
    #: The environment variable.
    env: str
    default: str | int | float | bool
    meaning: str

    def read(self, env: Mapping[str, str]) -> str | int | float | bool:
        """The value ``env`` gives, parsed as the default's type; unset or empty: the default."""
        raw = env.get(self.env, "")
        if isinstance(self.default, bool):
            return _switch(self.env, raw, self.default)
        if not raw:
            return self.default
        return type(self.default)(raw)


def setting(*, env: str, default: T, meaning: str, secret: bool = False) -> T:
    """A field of :class:`Settings` read from ``env``: the one place a setting is declared.

    ``secret`` keeps the value out of ``repr``, so that logging the settings never shows it.
    """
    return field(default=default, repr=not secret, metadata={"env": env, "meaning": meaning})


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs to know; every field has an environment variable."""

    broker: str = setting(
        env="KAFKA_BOOTSTRAP",
        default="kafka://127.0.0.1:9092",
        meaning="Kafka bootstrap, `kafka://host:port` or `host:port[,host:port]`.",
    )
    redis_url: str = setting(
        env="REDIS_URL", default="redis://127.0.0.1:6379/0", meaning="Redis URL."
    )
    app_id: str = setting(
        env="LW_APP_ID", default="lendwatch", meaning="Consumer group and state-topic prefix."
    )
    partitions: int = setting(
        env="LW_PARTITIONS",
        default=8,
        meaning="Partitions of every topic the pipeline creates; replay uses it too.",
    )
    batch_size: int = setting(
        env="LW_BATCH_SIZE",
        default=500,
        meaning="Most input records in one batch; a batch is whatever has arrived.",
    )
    input_path: str = setting(
        env="LW_INPUT_PATH",
        default="reader",
        meaning="How input records reach the pipeline: `reader` (batches taken straight from "
        "the queue Faust's conductor fills) or `agent` (a Faust agent over the input topics, "
        "`Stream.take_events`). docs/operations.md compares them.",
    )
    batch_within_ms: int = setting(
        env="LW_BATCH_WITHIN_MS",
        default=100,
        meaning="With `LW_INPUT_PATH=agent`: longest a batch waits to fill before it is "
        "handled (Faust's `take_events(within=...)`); the reader never waits.",
    )
    fetch_max_wait_ms: int = setting(
        env="LW_FETCH_MAX_WAIT_MS",
        default=100,
        meaning="Longest a consumer fetch waits for records on the broker. Apache Kafka "
        "answers as soon as records arrive; Tansu holds an empty fetch about half of this, so "
        "it bounds event latency on the embedded broker. Faust's own value is 1500.",
    )
    fetch_min_bytes: int = setting(
        env="LW_FETCH_MIN_BYTES",
        default=1,
        meaning="Bytes a consumer fetch waits for, up to the wait above. 1 answers at once; "
        "more means fewer, fuller fetches, which a busy broker serves with less work.",
    )
    state_flush_ms: int = setting(
        env="LW_STATE_FLUSH_MS",
        default=1000,
        meaning="Changed borrower states are written to the changelog together this often, "
        "and their input records committed after. Longer writes fewer records; a crash "
        "redelivers up to this much input (alerts are not sent twice).",
    )
    hot_states: int = setting(
        env="LW_HOT_STATES",
        default=2_000,
        meaning="Borrower states kept decoded, the most recently used; the rest are kept as "
        "their ~2 KB changelog records, a tenth of their decoded size, and decoded on use.",
    )
    producer_linger_ms: int = setting(
        env="LW_PRODUCER_LINGER_MS",
        default=5,
        meaning="Producer linger: lets alert sends share requests.",
    )
    idle_stream_seconds: float = setting(
        env="LW_IDLE_STREAM_SECONDS",
        default=30.0,
        meaning="An input partition silent this long no longer holds event time back.",
    )
    align_hold_seconds: float = setting(
        env="LW_ALIGN_HOLD_SECONDS",
        default=5.0,
        meaning="A record waits for another stream of its partition that still has records "
        "to come (a backlog read at uneven paces), so that the engine meets a partition's "
        "events in event-time order, as replay does; it goes on once that stream has "
        "delivered nothing for this long.",
    )
    align_max_held: int = setting(
        env="LW_ALIGN_MAX_HELD",
        default=20_000,
        meaning="At most this many records wait for a slower stream; beyond, the earliest go "
        "on (bounds memory when one topic runs far ahead).",
    )
    session_timeout_seconds: float = setting(
        env="LW_SESSION_TIMEOUT_SECONDS",
        default=60.0,
        meaning="Consumer session timeout. Tansu holds a group join for half of it, so the "
        "embedded setup uses a short one; Faust's 60 s suits production.",
    )
    group_instance_id: str = setting(
        env="LW_GROUP_INSTANCE_ID",
        default="",
        meaning="Static group membership (KIP-345): a worker restarted with the same id takes "
        "its partitions back at once instead of after the old session times out. Unique per "
        "worker (a StatefulSet pod name, a systemd instance); empty for dynamic membership.",
    )
    redis_prefix: str = setting(
        env="LW_REDIS_PREFIX", default="lw", meaning="Prefix of the Redis keys the pipeline owns."
    )
    web_port: int = setting(
        env="LW_WEB_PORT",
        default=6066,
        meaning="Faust web port for the worker, 0 to pick a free one.",
    )
    privacy_key: str = setting(
        env="LW_PRIVACY_KEY",
        default="",
        meaning="The platform's secret key for the keyed hashes of personal ids in alerts and "
        "logs. Empty: a fixed development key, whose hashes anyone can reverse by hashing "
        "candidate ids; the worker warns. Never shown by `repr`, so it is never logged.",
        secret=True,
    )
    mask_personal_data: bool = setting(
        env="LW_MASK_PERSONAL_DATA",
        default=True,
        meaning="Mask personal data in alerts and logs (`1/true/yes/on` or `0/false/no/off`; "
        "anything else is refused). Off only for internal deployments that need the raw ids; "
        "see streams/privacy.py.",
    )
    # The console's sign-in (streams/control/auth.py) and the command line's audit name.
    console_auth: str = setting(
        env="LW_CONSOLE_AUTH",
        default="password",
        meaning="How the console signs people in: `password` (the users file, a session "
        "cookie) or `proxy` (an identity header from an authenticating reverse proxy).",
    )
    console_users: str = setting(
        env="LW_CONSOLE_USERS",
        default="console-users.json",
        meaning="The console's users file (names, roles, scrypt hashes), written by "
        "`lendwatch console users add`. Missing or empty: the console is read-only.",
    )
    console_session_minutes: int = setting(
        env="LW_CONSOLE_SESSION_MINUTES",
        default=480,
        meaning="A console session ends this long after sign-in.",
    )
    console_trusted_proxies: str = setting(
        env="LW_CONSOLE_TRUSTED_PROXIES",
        default="",
        meaning="Addresses (CIDRs, comma-separated) of the proxies whose identity headers the "
        "console believes; the headers from any other peer are ignored.",
    )
    console_user_header: str = setting(
        env="LW_CONSOLE_USER_HEADER",
        default="X-Forwarded-User",
        meaning="The proxy's header naming the signed-in user.",
    )
    console_groups_header: str = setting(
        env="LW_CONSOLE_GROUPS_HEADER",
        default="X-Forwarded-Groups",
        meaning="The proxy's header listing the user's groups, comma-separated.",
    )
    console_group_roles: str = setting(
        env="LW_CONSOLE_GROUP_ROLES",
        default="",
        meaning="Groups to console roles, `group=role,group=role`. Empty: a group named "
        "`viewer`, `analyst` or `tuner` gives that role.",
    )
    console_tls_cert: str = setting(
        env="LW_CONSOLE_TLS_CERT",
        default="",
        meaning="A PEM certificate (with `LW_CONSOLE_TLS_KEY`): the console serves HTTPS and "
        "its session cookie is Secure.",
    )
    console_tls_key: str = setting(
        env="LW_CONSOLE_TLS_KEY", default="", meaning="The PEM key of `LW_CONSOLE_TLS_CERT`."
    )
    operator: str = setting(
        env="LW_OPERATOR",
        default="",
        meaning="The name `lendwatch thresholds` records in the audit trail. Empty: the OS "
        "user, as `login@host`.",
    )
    #: Each name from ``LW_TOPIC_<FIELD>``, e.g. ``LW_TOPIC_TRANSACTIONS`` (see TopicNames).
    topics: TopicNames = field(default_factory=TopicNames)

    @classmethod
    def declared(cls) -> tuple[Setting, ...]:
        """Every setting with its environment variable, default and meaning, in field order;
        the topic names last, ``LW_TOPIC_<FIELD>`` as :meth:`TopicNames.from_env` reads them."""
        topics = TopicNames()
        return cls._own() + tuple(
            Setting(
                f"topics.{name}",
                f"LW_TOPIC_{name.upper()}",
                getattr(topics, name),
                f"Name of the {name.replace('_', ' ')} topic.",
            )
            for name in TopicNames.__dataclass_fields__
        )

    @classmethod
    def _own(cls) -> tuple[Setting, ...]:
        """The fields declared with :func:`setting`."""
        return tuple(
            Setting(f.name, f.metadata["env"], f.default, f.metadata["meaning"])  # type: ignore[arg-type]
            for f in dataclasses.fields(cls)
            if "env" in f.metadata
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``env`` (default: the process environment); an unset or empty variable
        means the default, and an override that is not None wins over both."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {s.name: s.read(env) for s in cls._own()}
        values["topics"] = TopicNames.from_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

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
        return tuple(s.env for s in self.declared())
