"""Learning from the teams' verdicts on alerts: one River model per alert category.

A team that dismisses the same kind of alert twenty times says more about the next one than
any threshold fitted to a simulator. Each category gets a ``StandardScaler |
LogisticRegression`` that learns, when a verdict comes (days later), whether an alert like
the one judged was confirmed; it sees only what the alert said when it was raised
(:func:`features_of`: its detector, its score, each reason's observed value against its
threshold) and what the teams said before about the same borrower.

The model holds an alert back (it goes to ``alerts.shadow``, never lost) only past a cut it
learns: once it has enough labels of both kinds, and only below a fraction of the lowest
probability it gave, before their verdicts, to the alerts confirmed lately. A team that
confirms a kind of alert keeps it coming; one that only dismisses a kind stops seeing it.

Beside the model, a memory of each borrower's verdicts: an alert like one the teams dismissed
for the same borrower lately (the same detector and reason codes, no stronger score) is held
back too, the classic repeat false positive of a benign pattern. Neither holds back an alert
of a borrower whose alert of the category the teams confirmed: a confirmed case's later
alerts are still true.

Pure logic: no Kafka, Faust or Redis. The worker, replay and evaluate run this same code, and
the state depends only on the verdicts and the alerts' features, in the order given: every
worker that reads the whole feedback topic learns the same models (:attr:`VerdictModels.digest`).
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from topics.records import Alert, Feedback, Reason

if TYPE_CHECKING:
    from river import compose

__all__ = [
    "LABELS",
    "Judgement",
    "Remembered",
    "VerdictModels",
    "VerdictSettings",
    "features_of",
    "signature_of",
]

#: The verdicts that are labels: a duplicate says nothing of the alert's truth.
LABELS: Mapping[str, bool] = {"confirmed": True, "dismissed": False}
#: Reason code an alert held back, or let through by the model, carries.
REASON_CODE = "verdict_model"
RATIO_LIMIT = 10.0


@dataclass(frozen=True, slots=True)
class VerdictSettings:
    """How cautious the models are; data, like every threshold.

    ``min_labels`` and ``min_each``: labels of the category (and of each kind) learnt before
    it holds anything back. ``margin``: the cut is this fraction of the lowest probability
    the model gave, before their verdicts, to the last ``window`` alerts confirmed. Chosen
    once over 2 profiles × 2 seeds of the ablation, not per run (docs/evaluation.md).
    """

    min_labels: int = 20
    min_each: int = 5
    margin: float = 0.8
    window: int = 50
    learning_rate: float = 0.1
    #: Similar alerts (:func:`signature_of`) judged before, most of them dismissed, before
    #: one is held: the model alone never holds back a kind of alert the teams never judged.
    min_similar: int = 2
    #: Alerts remembered (their features) until their verdict comes; unknown verdicts kept.
    remembered_alerts: int = 200_000
    kept_unknown: int = 10_000
    remembered_borrowers: int = 200_000
    #: The memory: an alert like one dismissed for its borrower at most ``memory_days`` before
    #: is held back, unless its score is ``stronger_by`` above the dismissed one's.
    memory_days: float = 45.0
    stronger_by: float = 0.1


@dataclass(frozen=True, slots=True)
class Remembered:
    """What the models keep of a raised alert until its verdict: its category, its borrower
    (as the teams see it) and its features when it was raised."""

    category: str
    borrower: str
    signature: str
    x: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "borrower": self.borrower,
                "signature": self.signature, "x": self.x}  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Remembered:
        x = {str(k): float(v) for k, v in dict(raw["x"]).items()}
        return cls(str(raw["category"]), str(raw["borrower"]), str(raw["signature"]), x)


@dataclass(frozen=True, slots=True)
class Judgement:
    """The model's say on one alert: hold it back or not, why, and with what probability."""

    hold: bool
    probability: float | None
    cut: float | None
    reason: Reason | None


def signature_of(alert: Alert) -> str:
    """What "similar" means in the reason: the same detector and the same reason codes."""
    return f"{alert.detector}:{'+'.join(sorted({r.code for r in alert.reasons}))}"


def _ratio(observed: Any, threshold: Any) -> float | None:
    """Observed against threshold, when both are numbers: sign × log(1 + |observed /
    threshold|), monotone in the ratio and bounded."""
    numbers = (observed, threshold)
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
        return None
    if not all(math.isfinite(v) for v in numbers) or threshold == 0:
        return None
    ratio = observed / threshold
    return max(-RATIO_LIMIT, min(RATIO_LIMIT, math.copysign(math.log1p(abs(ratio)), ratio)))


def features_of(alert: Alert, history: tuple[int, int] = (0, 0)) -> dict[str, float]:
    """The alert as the model sees it: detector, score, each reason code with its observed
    value against its threshold, and the borrower's earlier verdicts (confirmed, dismissed)
    in the category, as the teams gave them before the alert was raised."""
    x = {"score": float(alert.score), f"detector={alert.detector}": 1.0}
    for reason in alert.reasons:
        x[f"code={reason.code}"] = 1.0
        ratio = _ratio(reason.observed, reason.threshold)
        if ratio is not None:
            x[f"ratio:{reason.code}"] = ratio
    confirmed, dismissed = history
    x["borrower_confirmed"] = math.log1p(confirmed)
    x["borrower_dismissed"] = math.log1p(dismissed)
    return x


def _new_model(learning_rate: float) -> compose.Pipeline:
    """Scaled features into a logistic regression. River is imported here, on first use:
    importing it (scipy with it) takes about 2 s, which a worker starting would otherwise spend
    before joining its group (``streams.worker.app.SlowImports`` imports it meanwhile)."""
    from river import compose, linear_model, optim, preprocessing

    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate)),
    )


@dataclass
class BorrowerMemory:
    """One borrower's verdicts in one category: the last dismissal of each kind of alert
    (:func:`signature_of` → when it was dismissed, the alert's score), the last confirmation."""

    dismissed: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    confirmed_at: datetime | None = None


@dataclass
class CategoryModel:
    """One category's model, the labels it learnt and the cut it learnt."""

    model: compose.Pipeline
    confirmed: int = 0
    dismissed: int = 0
    #: Probability given, before the verdict, to the last confirmed alerts (once ready).
    confirmed_probabilities: deque[float] = field(default_factory=deque)
    #: Verdicts of similar alerts (:func:`signature_of`): signature → [confirmed, dismissed].
    similar: dict[str, list[int]] = field(default_factory=dict)

    @property
    def labels(self) -> int:
        return self.confirmed + self.dismissed


class VerdictModels:
    """The models of every category, what they remember of raised alerts, and their version.

    Call :meth:`remember` for each alert raised (held or not), :meth:`judge` before
    publishing one, :meth:`learn` for each verdict in the feedback topic's order.
    """

    def __init__(self, settings: VerdictSettings | None = None) -> None:
        self.settings = settings or VerdictSettings()
        self.categories: dict[str, CategoryModel] = {}
        self.alerts: OrderedDict[str, Remembered] = OrderedDict()
        #: Borrower (as published) and category → [confirmed, dismissed].
        self.borrowers: OrderedDict[str, list[int]] = OrderedDict()
        #: Borrower (as published) and category → its verdicts remembered.
        self.memory: OrderedDict[str, BorrowerMemory] = OrderedDict()
        #: Verdicts for alert ids never raised here: kept (bounded), counted, not applied.
        self.unknown: OrderedDict[str, str] = OrderedDict()
        self.counts: dict[str, int] = {}
        #: Alerts held back here, by category: what this process did, not what it learnt.
        self.held: dict[str, int] = {}
        self.digest = hashlib.blake2b(digest_size=8).hexdigest()
        self.last_update: datetime | None = None

    # --- alerts ------------------------------------------------------------------------

    def remember(self, alert: Alert, alert_id: str | None = None) -> Remembered:
        """Keep what the alert says, under the id the teams will quote (``alert_id``: the
        published one, masked or not), until its verdict comes."""
        remembered = self.describe(alert)
        self.keep(alert_id or alert.alert_id, remembered)
        return remembered

    def describe(self, alert: Alert) -> Remembered:
        """The alert's features now, with its borrower's verdicts so far."""
        history = self.borrowers.get(f"{alert.category}:{alert.borrower_id}", [0, 0])
        x = features_of(alert, (history[0], history[1]))
        return Remembered(alert.category, alert.borrower_id, signature_of(alert), x)

    def keep(self, alert_id: str, remembered: Remembered) -> None:
        self.alerts[alert_id] = remembered
        self.alerts.move_to_end(alert_id)
        while len(self.alerts) > self.settings.remembered_alerts:
            self.alerts.popitem(last=False)

    def judge(self, alert: Alert, remembered: Remembered | None = None) -> Judgement:
        """Whether to hold ``alert`` back: past the category's learnt cut, or like an alert
        dismissed lately for the same borrower; never when the borrower has a confirmed one."""
        remembered = remembered or self.describe(alert)
        memory = self.memory.get(f"{alert.category}:{alert.borrower_id}")
        if memory is not None and memory.confirmed_at is not None:
            return Judgement(False, None, None, None)
        state = self.categories.get(alert.category)
        probability = cut = None
        if state is not None and self._ready(state):
            probability = self._probability(state, remembered.x)
            cut = self._cut(state)
            if cut is not None and probability < cut and self._mostly_dismissed(state, remembered):
                reason = self._reason(state, remembered, probability, cut)
                return self._hold(alert, Judgement(True, probability, cut, reason))
        recalled = self._recall(alert, remembered, memory)
        if recalled is not None:
            return self._hold(alert, Judgement(True, probability, cut, recalled))
        return Judgement(False, probability, cut, None)

    def _hold(self, alert: Alert, judgement: Judgement) -> Judgement:
        self.held[alert.category] = self.held.get(alert.category, 0) + 1
        return judgement

    def _recall(
        self, alert: Alert, remembered: Remembered, memory: BorrowerMemory | None
    ) -> Reason | None:
        """The memory's reason to hold ``alert`` back: an alert of the same kind dismissed for
        its borrower within ``memory_days``, and this one's score not ``stronger_by`` above."""
        if memory is None or remembered.signature not in memory.dismissed:
            return None
        when, score = memory.dismissed[remembered.signature]
        days = (alert.ts - when).total_seconds() / 86_400
        limit = score + self.settings.stronger_by
        if not 0 <= days <= self.settings.memory_days or alert.score >= limit:
            return None
        return Reason(
            code=REASON_CODE,
            message=(
                f"held back by the verdict memory: an alert like this one ({remembered.signature})"
                f" was dismissed for this borrower {days:.0f} days ago (score {score:.2f}, this "
                f"one {alert.score:.2f}, not {self.settings.stronger_by:g} above it)"
            ),
            observed=round(float(alert.score), 4),
            threshold=round(limit, 4),
        )

    def _ready(self, state: CategoryModel) -> bool:
        settings = self.settings
        return (
            state.labels >= settings.min_labels
            and min(state.confirmed, state.dismissed) >= settings.min_each
        )

    def _cut(self, state: CategoryModel) -> float | None:
        """None until ``min_each`` confirmed alerts were scored before their verdict: a cut
        from fewer says little of how low a true alert may score."""
        if len(state.confirmed_probabilities) < self.settings.min_each:
            return None
        return self.settings.margin * min(state.confirmed_probabilities)

    def _mostly_dismissed(self, state: CategoryModel, remembered: Remembered) -> bool:
        confirmed, dismissed = state.similar.get(remembered.signature, [0, 0])
        return confirmed + dismissed >= self.settings.min_similar and dismissed > confirmed

    @staticmethod
    def _probability(state: CategoryModel, x: Mapping[str, float]) -> float:
        return float(state.model.predict_proba_one(dict(x)).get(True, 0.5))

    @staticmethod
    def _reason(
        state: CategoryModel, remembered: Remembered, probability: float, cut: float
    ) -> Reason:
        confirmed, dismissed = state.similar.get(remembered.signature, [0, 0])
        judged = confirmed + dismissed
        similar = (
            f"similar alerts were dismissed {dismissed} of {judged} times"
            if judged
            else "no similar alert was judged yet"
        )
        return Reason(
            code=REASON_CODE,
            message=(
                f"held back by the verdict model: {similar}; it gives {probability:.2f} that "
                f"this one is confirmed, below its cut of {cut:.2f} "
                f"(learnt from {state.labels} verdicts)"
            ),
            observed=round(probability, 4),
            threshold=round(cut, 4),
        )

    # --- verdicts ----------------------------------------------------------------------

    def learn(self, verdict: Feedback, remembered: Remembered | None = None) -> str:
        """Apply one verdict; returns what became of it: ``applied``, ``duplicate`` (not a
        label), ``unknown_alert`` (no alert of that id raised: kept, not applied) or
        ``repeated`` (the alert was judged already: the first verdict stands)."""
        outcome = self._learn(verdict, remembered)
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        return outcome

    def _learn(self, verdict: Feedback, remembered: Remembered | None) -> str:
        if verdict.verdict not in LABELS:
            return "duplicate"
        known = self.alerts.get(verdict.alert_id)
        if known is not None and not known.x:  # judged already
            return "repeated"
        remembered = remembered or known
        if remembered is None:
            self.unknown[verdict.alert_id] = verdict.verdict
            while len(self.unknown) > self.settings.kept_unknown:
                self.unknown.popitem(last=False)
            return "unknown_alert"
        confirmed = LABELS[verdict.verdict]
        state = self.categories.get(remembered.category)
        if state is None:
            state = self.categories[remembered.category] = CategoryModel(
                _new_model(self.settings.learning_rate)
            )
        if confirmed and self._ready(state):
            state.confirmed_probabilities.append(self._probability(state, remembered.x))
            while len(state.confirmed_probabilities) > self.settings.window:
                state.confirmed_probabilities.popleft()
        state.model.learn_one(dict(remembered.x), confirmed)
        self._count(state, remembered, confirmed)
        self._remember_verdict(remembered, confirmed, verdict.ts)
        self.keep(verdict.alert_id, Remembered(remembered.category, remembered.borrower, "", {}))
        self.digest = hashlib.blake2b(
            f"{self.digest}\x1f{verdict.alert_id}\x1f{verdict.verdict}".encode(), digest_size=8
        ).hexdigest()
        self.last_update = verdict.ts
        return "applied"

    def _count(self, state: CategoryModel, remembered: Remembered, confirmed: bool) -> None:
        column = 0 if confirmed else 1
        if confirmed:
            state.confirmed += 1
        else:
            state.dismissed += 1
        state.similar.setdefault(remembered.signature, [0, 0])[column] += 1
        key = f"{remembered.category}:{remembered.borrower}"
        history = self.borrowers.setdefault(key, [0, 0])
        history[column] += 1
        self.borrowers.move_to_end(key)
        while len(self.borrowers) > self.settings.remembered_borrowers:
            self.borrowers.popitem(last=False)

    def _remember_verdict(self, remembered: Remembered, confirmed: bool, ts: datetime) -> None:
        key = f"{remembered.category}:{remembered.borrower}"
        memory = self.memory.setdefault(key, BorrowerMemory())
        if confirmed:
            memory.confirmed_at = ts
        else:
            memory.dismissed[remembered.signature] = (ts, remembered.x.get("score", 1.0))
        self.memory.move_to_end(key)
        while len(self.memory) > self.settings.remembered_borrowers:
            self.memory.popitem(last=False)

    # --- what they are, checkpoints ----------------------------------------------------

    @property
    def labels(self) -> int:
        return sum(state.labels for state in self.categories.values())

    @property
    def version(self) -> str:
        """The labels learnt and a digest of the verdicts in order: equal on every worker
        that applied the same verdicts."""
        return f"{self.labels}-{self.digest}"

    def describe_models(self) -> dict[str, dict[str, Any]]:
        """Per category: labels, confirmed, dismissed, held, the cut, whether it holds."""
        return {
            category: {
                "labels": state.labels,
                "confirmed": state.confirmed,
                "dismissed": state.dismissed,
                "held": self.held.get(category, 0),
                "ready": self._ready(state),
                "cut": self._cut(state),
            }
            for category, state in sorted(self.categories.items())
        }

    def snapshot(self, *, with_alerts: bool = True) -> bytes:
        """Everything learnt, as bytes (River models pickle); ``with_alerts=False`` keeps of
        the remembered alerts only those judged (the worker keeps the others in Redis)."""
        alerts = (
            self.alerts
            if with_alerts
            else OrderedDict((key, value) for key, value in self.alerts.items() if not value.x)
        )
        return pickle.dumps(
            (
                self.settings,
                self.categories,
                alerts,
                self.borrowers,
                self.unknown,
                self.counts,
                self.digest,
                self.last_update,
                self.memory,
            )  # fmt: skip
        )

    @classmethod
    def restore(cls, snapshot: bytes) -> VerdictModels:
        """Take back what :meth:`snapshot` gave."""
        # Our own checkpoints (the worker's Redis), never input from outside.
        fields = pickle.loads(snapshot)  # noqa: S301
        (settings, categories, alerts, borrowers, unknown, counts, digest, last) = fields[:8]
        models = cls(settings)
        if len(fields) > 8:  # checkpoints before the memory have none: it starts empty
            models.memory = fields[8]
        models.categories, models.alerts, models.borrowers = categories, alerts, borrowers
        models.unknown, models.counts, models.digest = unknown, counts, digest
        models.last_update = last
        return models

    def state_digest(self) -> str:
        """A digest of what the models learnt (weights, scaler statistics, counts, cuts), not
        of how they are pickled: equal on every worker that learnt the same verdicts."""
        learnt = {
            category: {
                "labels": [state.confirmed, state.dismissed],
                "confirmed_probabilities": list(state.confirmed_probabilities),
                "similar": sorted(state.similar.items()),
                "model": _model_state(state.model),
            }
            for category, state in sorted(self.categories.items())
        }
        whole = {
            "categories": learnt,
            "borrowers": sorted(self.borrowers.items()),
            "memory": sorted((key, vars(value)) for key, value in self.memory.items()),
            "unknown": sorted(self.unknown.items()),
            "judged": sorted(key for key, value in self.alerts.items() if not value.x),
            "counts": sorted(self.counts.items()),
            "digest": self.digest,
        }
        text = json.dumps(whole, sort_keys=True, default=repr)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _model_state(model: compose.Pipeline) -> dict[str, Any]:
    """The numbers a ``StandardScaler | LogisticRegression`` learnt."""
    scaler, regression = model["StandardScaler"], model["LogisticRegression"]
    return {
        "counts": sorted(scaler.counts.items()),
        "means": sorted(scaler.means.items()),
        "vars": sorted(scaler.vars.items()),
        "weights": sorted(regression.weights.items()),
        "intercept": regression.intercept,
    }
