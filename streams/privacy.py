"""Personal data masked in what the pipeline publishes and logs: keyed hashes, truncated IPs."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from topics.records import BORROWER, IP, PLACE, Alert, Reason, Wording, show_raw

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = [
    "DEVELOPMENT_KEY",
    "LogMasking",
    "Masker",
    "install_log_masking",
    "startup_warnings",
]

#: The key when the platform sets no LW_PRIVACY_KEY. It is in the source, so anyone can hash
#: candidate ids with it and find which one a hash stands for: development and tests only.
DEVELOPMENT_KEY = b"lendwatch development key: not a secret"
#: A platform key shorter than this is worth a warning (``openssl rand -hex 32`` gives 64).
MIN_KEY_LENGTH = 32

_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IPV6 = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\." + r"\d{1,3}){0,3}"
# An address stands alone: not part of a version ("LendApp/5.2.4.1"), a longer number or an
# already truncated network ("203.0.113.0/24"); a time ("09:43:35") fails validation. An IPv6
# neither starts nor ends at a colon (it would be cut short); an IPv4 may (a port, an episode).
_IP_IN_TEXT = re.compile(
    rf"(?<![\w.:/])(?:{_IPV6})(?![\w:]|\.\d|/\d)|(?<![\w./])(?:{_IPV4})(?!\w|\.\d|/\d)"
)
# Log lines (see :meth:`Masker.log_line`) that name borrowers: a dead letter's key mismatch
# (topics/validate.py) and a failed timer (detectors/engine.py).
_QUOTED = r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
_KEY_MISMATCH = re.compile(rf"record key {_QUOTED} does not match borrower_id {_QUOTED}")
_TIMER_OF = re.compile(r"(timer \S+ of )(.+?)( failed: )")
# An exception a detector raised, in a dead letter's reason or a degraded line: its arguments
# may hold anything the detector held, so a log line keeps only its type.
_DETECTOR_EXCEPTION = re.compile(r"((?:detector error| failed): )([\w.]+)\(.*\)", re.DOTALL)
#: Addresses a log line may keep: the deployment's own brokers and Redis, not a person's.
_INFRASTRUCTURE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


@dataclass(frozen=True)
class Masker:
    """Masks personal data with the platform's key; with ``enabled=False`` every method
    returns its argument unchanged (internal deployments that need the raw ids).

    Ids are replaced by a keyed hash, not dropped: the same id gives the same hash in every
    alert, log line and worker with the same key, so alerts can still be grouped by borrower,
    device or account, and the platform, which has the key, can find the id behind a hash.
    IPs are truncated rather than hashed: the network is what a security analyst reads
    (a provider, a region, one office behind NAT), and a /24 or /48 no longer points at one
    subscriber.

    >>> masker = Masker(b"k" * 32)
    >>> masker.borrower("b-00022")
    'h-ed086e0a6790760276e2'
    >>> masker.ip("203.0.113.7"), masker.ip("2001:db8:1234:5678::1")
    ('203.0.113.0/24', '2001:db8:1234::/48')
    >>> masker.text("IP 203.0.113.7 never used before")
    'IP 203.0.113.0/24 never used before'
    >>> Masker(b"k" * 32, enabled=False).borrower("b-00022")
    'b-00022'
    """

    key: bytes = field(repr=False)
    enabled: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Masker:
        """LW_PRIVACY_KEY (or the development key when unset) and LW_MASK_PERSONAL_DATA."""
        key = settings.privacy_key.encode() if settings.privacy_key else DEVELOPMENT_KEY
        return cls(key, settings.mask_personal_data)

    def borrower(self, borrower_id: str) -> str:
        """The borrower's keyed hash: ``"h-"`` and 20 hex digits of HMAC-SHA256.

        20 hex digits are 80 bits. Collisions: among a hundred million distinct ids (borrowers,
        devices and accounts together) the chance that any two share a hash is about
        n² / 2⁸¹ ≈ 4·10⁻⁹. Guessing: without the key a hash says nothing about its id, and
        truncating HMAC keeps it a keyed function one cannot evaluate without the key, so the
        length guards only against collisions. Short enough to read in ``lendwatch tail``.
        """
        return self.pseudonym(borrower_id)

    def pseudonym(self, value: str) -> str:
        """The keyed hash of any personal id (device, account, counterparty): the same
        function as :meth:`borrower`, so an id hashes alike wherever it appears."""
        if not self.enabled:
            return value
        return "h-" + self._digest(value.encode())[:20]

    def ip(self, text: str) -> str:
        """An IPv4 truncated to its /24, an IPv6 to its /48 (an IPv4-mapped IPv6 as its IPv4).
        A value that is no address (the contract only asks for a string) is hashed."""
        if not self.enabled:
            return text
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            return self.pseudonym(text)
        return _network(address)

    def text(self, text: str, known: Mapping[str, str] | None = None) -> str:
        """Free text with the ``known`` personal values (raw → masked) replaced where they
        stand as whole tokens, and every IP address left truncated. Not for alerts: their
        personal values are marked (see :meth:`alert`)."""
        if not self.enabled or not text:
            return text
        if known:
            text = _replace_tokens(text, known)
        return _mask_ips(text, lambda address: True)

    def alert(self, alert: Alert) -> Alert:
        """A copy of ``alert`` with every personal value masked by its kind: ids hashed, IPs
        truncated, coordinates rounded, in its borrower, reasons, evidence and episode.

        Detectors mark what is personal where they make it (``detectors.personal``): each
        message, the episode and any evidence entry that names someone come with their
        template and slots (:class:`topics.records.Wording`), and are rendered again here with
        the personal slots masked; ``observed`` and ``threshold`` are masked when their kind
        is set. Nothing is found by reading the text, so rewording a message cannot publish a
        raw id. A reason or an episode built by hand, without a wording, names no one and is
        kept as it is. The copy keeps no wording: it holds no raw value, even internally.

        Its ``alert_id`` is keyed too (32 hex digits of HMAC-SHA256 of the id): the unkeyed
        id hashes the raw borrower id with the detector and the episode, which for a week or
        an installment the alert itself shows, so whoever can list candidate borrower ids
        could find the one behind the hash. The keyed id is as stable (the same alert always
        gets it, in every worker and in replay with the same key), so consumers still
        deduplicate on it. Loan ids, installments and event ids stay: they are the platform's
        record ids, which its teams need to act, and name no one without its database.
        """
        if not self.enabled:
            return alert
        fields = alert.asdict()
        fields.update(
            alert_id=self._digest(b"alert_id\x1f" + alert.alert_id.encode())[:32],
            borrower_id=self.borrower(alert.borrower_id),
            reasons=[self._reason(reason) for reason in alert.reasons],
            evidence=self._evidence(alert),
            episode=self._render(alert.episode_wording, alert.episode),
            episode_wording=None,
            evidence_wording=None,
        )
        return Alert(**fields)

    def personal(self, kind: str, value: Any) -> str:
        """A personal value of ``kind`` masked: an IP truncated, a place's coordinates
        rounded to 1 decimal (about 11 km: a district) with a city kept as it is, any id
        hashed.

        Coordinates are published to 2 decimals (about 1 km: a street). A city of millions
        names no one, and the analyst needs it to judge a journey.

        >>> masker = Masker(b"k" * 32)
        >>> masker.personal("place", {"city": None, "lat": 32.07, "lon": 118.8})
        '32.1,118.8'
        >>> masker.personal("device", "dev-9") == masker.pseudonym("dev-9")
        True
        """
        if not self.enabled:
            return show_raw(kind, value)
        if kind == IP:
            return self.ip(value)
        if kind == PLACE:
            return value["city"] or f"{value['lat']:.1f},{value['lon']:.1f}"
        if kind == BORROWER:
            return self.borrower(value)
        return self.pseudonym(value)

    def log_line(self, line: str) -> str:
        """A log line with IPs truncated (but for the deployment's own loopback and private
        addresses), borrower ids hashed where the worker's log lines name them, and the
        arguments of a detector's exception left out (the dead letter keeps them)."""
        if not self.enabled or not line:
            return line
        line = _KEY_MISMATCH.sub(self._key_mismatch, line)
        line = _TIMER_OF.sub(lambda m: m[1] + self.borrower(m[2]) + m[3], line)
        line = _DETECTOR_EXCEPTION.sub(r"\1\2(…)", line)
        return _mask_ips(line, _personal_address)

    def _digest(self, message: bytes) -> str:
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def _key_mismatch(self, match: re.Match[str]) -> str:
        key, borrower = (self.borrower(_unquote(group)) for group in (match[1], match[2]))
        return f"record key {key!r} does not match borrower_id {borrower!r}"

    def _reason(self, reason: Reason) -> Reason:
        return Reason(
            code=reason.code,
            message=self._render(reason.wording, reason.message),
            observed=self._field(reason.observed, reason.observed_kind),
            threshold=self._field(reason.threshold, reason.threshold_kind),
        )

    def _render(self, wording: Wording | None, text: str) -> str:
        """``text`` rendered again from its wording with the personal slots masked."""
        return text if wording is None else wording.render(self.personal)

    def _field(self, value: float | str | None, kind: str | None) -> float | str | None:
        return value if kind is None or value is None else self.personal(kind, value)

    def _evidence(self, alert: Alert) -> list[str]:
        wordings = alert.evidence_wording
        if not wordings:
            return list(alert.evidence)
        return [
            self._render(wording, entry)
            for entry, wording in zip(alert.evidence, wordings, strict=True)
        ]


def _network(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Network((int(address), 24), strict=False))
    return str(ipaddress.IPv6Network((int(address), 48), strict=False))


def _mask_ips(
    text: str, personal: Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]
) -> str:
    def replace(match: re.Match[str]) -> str:
        try:
            address = ipaddress.ip_address(match[0])
        except ValueError:
            return match[0]  # a time, a version: not an address
        return _network(address) if personal(address) else match[0]

    return _IP_IN_TEXT.sub(replace, text)


def _personal_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not any(address in network for network in _INFRASTRUCTURE)


def _replace_tokens(text: str, known: Mapping[str, str]) -> str:
    """Each ``known`` value where it stands whole: not inside a longer id (``b-1`` in
    ``b-10`` or ``lb-1``); the longest first, so an id that contains another wins."""
    tokens = sorted((token for token in known if token), key=len, reverse=True)
    if not tokens:
        return text
    pattern = re.compile(
        r"(?<![\w-])(?:" + "|".join(re.escape(token) for token in tokens) + r")(?![\w-])"
    )
    return pattern.sub(lambda match: known[match[0]], text)


def _unquote(quoted: str) -> str:
    return quoted[1:-1].replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\")


class LogMasking(logging.Filter):
    """Masks every record it sees with :meth:`Masker.log_line`, traceback included; the
    record's arguments are merged into its message first, so an id passed as an argument is
    found too. Log lines are few (dead letters, degradations), so the cost does not matter."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.masker.log_line(message)
        if masked != message:
            # An empty tuple, not None: Faust's formatter wraps any other non-tuple in one.
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            traceback = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.masker.log_line(traceback)
        return True


def install_log_masking(masker: Masker, loggers: Iterable[str] = ("lendwatch",)) -> None:
    """Mask the records of ``loggers`` (the worker logs on ``lendwatch``) before any handler
    sees them; a filter installed earlier is replaced, so installing twice masks once.

    On the logger rather than on handlers: Faust configures its handlers only once the worker
    starts, after this runs, and keeps a logger's filters (``disable_existing_loggers`` is
    off).
    """
    if not masker.enabled:
        return
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, LogMasking)]:
            logger.removeFilter(old)
        logger.addFilter(LogMasking(masker))


def startup_warnings(settings: Settings) -> list[str]:
    """What a worker says once at start about how it masks personal data."""
    if not settings.mask_personal_data:
        return [
            "personal data is NOT masked (LW_MASK_PERSONAL_DATA=0 or --no-mask): alerts and "
            "logs carry raw borrower, device and account ids and full IPs"
        ]
    if not settings.privacy_key:
        return [
            "LW_PRIVACY_KEY is not set: personal ids are hashed with the public development "
            "key, so the hashes are guessable (anyone can hash candidate ids and compare); set "
            "LW_PRIVACY_KEY to the platform's secret key (e.g. `openssl rand -hex 32`)"
        ]
    if len(settings.privacy_key.encode()) < MIN_KEY_LENGTH:
        return [
            f"LW_PRIVACY_KEY is shorter than {MIN_KEY_LENGTH} bytes: a short key can be "
            "guessed, and with it every hash reversed; use e.g. `openssl rand -hex 32`"
        ]
    return []
