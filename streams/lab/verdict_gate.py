"""The verdict models between the rules and the teams, offline: replay, backtest and evaluate
hold alerts back as the worker does, learning from feedback records in event time.

The rules' alerts do not depend on the verdicts (the models only decide what is published),
so a gate can run beside the engine or over its alerts afterwards: both see each verdict
before the first alert raised after its ``ts``.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from detectors.verdicts import VerdictModels
from topics.records import Alert, Feedback

__all__ = ["FeedbackSource", "RecordedFeedback", "SimulatedFeedback", "VerdictGate"]


class FeedbackSource(Protocol):
    """Where verdicts come from: a file's feedback records, or simulated teams."""

    def due(self, until: datetime) -> list[Feedback]:
        """The verdicts stamped at or before ``until`` not yet given, in order."""
        ...

    def published(self, alerts: Sequence[Alert]) -> None:
        """Alerts the teams now see (simulated teams judge some of them later)."""
        ...


class _Queue:
    """Verdicts in ``ts`` order; ties keep the order they came in."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Feedback]] = []
        self._count = 0

    def push(self, verdict: Feedback) -> None:
        heapq.heappush(self._heap, (verdict.ts.timestamp(), self._count, verdict))
        self._count += 1

    def due(self, until: datetime) -> list[Feedback]:
        limit, out = until.timestamp(), []
        while self._heap and self._heap[0][0] <= limit:
            out.append(heapq.heappop(self._heap)[2])
        return out


class RecordedFeedback(_Queue):
    """The feedback records of a replay file, given in event time."""

    def __init__(self, verdicts: Iterable[Feedback]) -> None:
        super().__init__()
        for verdict in verdicts:
            self.push(verdict)

    def published(self, alerts: Sequence[Alert]) -> None:
        """Recorded teams already said all they said."""


def _chosen(alert_id: str, share: float) -> bool:
    """Whether an alert is among the ``share`` judged: by its id, the same in every run."""
    digest = hashlib.blake2b(alert_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


class SimulatedFeedback(_Queue):
    """Teams that judge a ``share`` of the alerts they see, ``delay`` after each, rightly:
    confirmed when ``truth`` says the alert finds a case, dismissed otherwise."""

    def __init__(self, truth: Callable[[Alert], bool], share: float, delay: timedelta) -> None:
        super().__init__()
        self.truth, self.share, self.delay = truth, share, delay

    def published(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            if _chosen(alert.alert_id, self.share):
                verdict = "confirmed" if self.truth(alert) else "dismissed"
                self.push(
                    Feedback(
                        event_id=f"sim-{alert.alert_id}",
                        ts=alert.ts + self.delay,
                        alert_id=alert.alert_id,
                        verdict=verdict,
                        author="simulated",
                    )
                )


class VerdictGate:
    """Verdicts learnt in event time, alerts judged as they come: the kept ones returned,
    the held ones (with the model's reason) in :attr:`held`. Without models it holds nothing
    and learns nothing (the rules alone), but counts the verdicts."""

    def __init__(self, models: VerdictModels | None, feedback: FeedbackSource) -> None:
        self.models, self.feedback = models, feedback
        self.held: list[Alert] = []
        self.outcomes: Counter[str] = Counter()

    def before(self, until: datetime) -> None:
        """Learn every verdict stamped up to ``until``."""
        for verdict in self.feedback.due(until):
            outcome = self.models.learn(verdict) if self.models else "not_learnt"
            self.outcomes[outcome] += 1

    def admit(self, alerts: Sequence[Alert]) -> list[Alert]:
        """The alerts to publish; each held one goes to :attr:`held` with the model's reason."""
        kept = []
        for alert in alerts:
            self.before(alert.ts)
            if self.models is None:
                kept.append(alert)
                self.feedback.published([alert])
                continue
            remembered = self.models.remember(alert)
            judgement = self.models.judge(alert, remembered)
            if judgement.hold and judgement.reason is not None:
                held = copy.copy(alert)
                held.reasons = [*alert.reasons, judgement.reason]
                self.held.append(held)
            else:
                kept.append(alert)
                self.feedback.published([alert])
        return kept
