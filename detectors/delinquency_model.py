"""Delinquency's classifier, one per worker over all its partitions: every installment's outcome
learnt at its deadline, its lift as evidence."""

from __future__ import annotations

from collections.abc import Iterable

from river import compose, linear_model, optim, preprocessing
from river.optim import losses

__all__ = ["FEATURES", "WorkerClassifier"]

#: What the classifier sees of an installment at a check, in this order.
FEATURES = (
    "inflow_drop",
    "inflow_rank_low",
    "installment_share",
    "silence_log",
    "payout_change",
    "prior_missed",
    "prior_late",
    "past_due",
    "paid_share",
    "days_to_due",
    "reversals",
    "relative_drop",
    "projected_drop",
    "reversal_owed",
    "payout_recent",
    "silence_days",
)
#: Weight of each new prediction in a partition's running mean of predicted risk.
TYPICAL_WEIGHT = 0.01


def _new_model(positive_weight: float) -> compose.Pipeline:
    """Scaled features into a logistic regression; a miss weighs ``positive_weight`` times a
    paid installment, since misses are about one in fifty open installments."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(
            optimizer=optim.SGD(0.005), loss=losses.Log(weight_pos=positive_weight)
        ),
    )


class WorkerClassifier:
    """One River ``StandardScaler | LogisticRegression`` for every partition a worker holds,
    the outcomes it has learnt (and the misses among them), and the running mean of what it
    predicts.

    A partition sees about five misses in 90 days: too few to learn from. One model over all
    of a worker's partitions sees every installment's outcome the worker judges. An online
    model trained on a few dozen misses is not calibrated, and its scale drifts as it learns:
    what carries information is how far an installment stands above the risk the same model
    gives installments in general (:meth:`lift`).
    """

    def __init__(self, positive_weight: float) -> None:
        self.positive_weight = positive_weight
        self.model: compose.Pipeline | None = None
        self.labels = 0
        self.positives = 0
        #: Running mean of the risk the classifier predicted for the installments it judged.
        self.typical: float | None = None

    def learn(self, snapshots: Iterable[list[float]], missed: bool) -> None:
        """Learn an installment's feature snapshots once its outcome is known."""
        if self.model is None:
            self.model = _new_model(self.positive_weight)
        for vector in snapshots:
            # Snapshots of an older version (fewer features) are dropped, not misread.
            if len(vector) == len(FEATURES):
                self.model.learn_one(dict(zip(FEATURES, vector, strict=True)), missed)
                self.labels += 1
                self.positives += missed

    def lift(
        self, features: dict[str, float], min_labels: int, min_misses: int
    ) -> tuple[float, float, float] | None:
        """The prediction's lift over the running mean, the prediction and that mean (which it
        moves); None until the model has learnt enough outcomes and misses."""
        if self.model is None or self.labels < min_labels or self.positives < min_misses:
            return None
        probability = float(self.model.predict_proba_one(features).get(True, 0.0))
        typical = probability if self.typical is None else self.typical
        typical += TYPICAL_WEIGHT * (probability - typical)
        self.typical = typical
        return probability / max(typical, 1e-9), probability, typical

    def top(self, features: dict[str, float]) -> str:
        """The features that raised the prediction most, with their contributions."""
        assert self.model is not None
        scaled = self.model["StandardScaler"].transform_one(features)
        weights = self.model["LogisticRegression"].weights
        contributions = sorted(
            ((weights.get(name, 0.0) * scaled.get(name, 0.0), name) for name in FEATURES),
            reverse=True,
        )
        top = ", ".join(f"{name} ({value:+.2f})" for value, name in contributions[:3] if value > 0)
        return top or "nothing"

    def checkpoint(self) -> tuple[compose.Pipeline | None, int, int, float | None] | None:
        """What a checkpoint keeps (None: nothing learnt). Every partition's checkpoint holds
        the worker's one model: whichever worker takes a partition over gets it."""
        if self.model is None:
            return None
        return self.model, self.labels, self.positives, self.typical

    def load(
        self, model: compose.Pipeline | None, labels: int, positives: int, typical: float | None
    ) -> None:
        """Take back what :meth:`checkpoint` gave, when it learnt more than the model held
        (the partitions a worker is assigned carry copies of the same or older models)."""
        if model is None or labels <= self.labels:
            return
        self.model, self.labels, self.positives = model, labels, positives
        if typical is not None:
            self.typical = typical
