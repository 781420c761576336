"""Delinquency's per-partition classifier: outcomes learnt at the deadline, its lift as evidence."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from river import compose

__all__ = ["FEATURES", "PartitionClassifier"]

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
)
#: Weight of each new prediction in a partition's running mean of predicted risk.
TYPICAL_WEIGHT = 0.01


def _new_model(positive_weight: float) -> compose.Pipeline:
    """Scaled features into a logistic regression; a miss weighs ``positive_weight`` times a
    paid installment, since misses are about one in fifty open installments.

    River is imported here, on first use: importing it (scipy with it) takes about 2 s, which
    a worker starting would otherwise spend before joining its group
    (streams.worker.app imports it meanwhile, in a thread)."""
    from river import compose, linear_model, optim, preprocessing
    from river.optim import losses

    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(
            optimizer=optim.SGD(0.005), loss=losses.Log(weight_pos=positive_weight)
        ),
    )


class PartitionClassifier:
    """One River ``StandardScaler | LogisticRegression`` per partition, the outcomes it has
    learnt (and the misses among them), and the running mean of what it predicts.

    An online model trained on a few dozen misses is not calibrated, and its scale drifts
    as it learns: what carries information is how far an installment stands above the risk
    the same model gives the partition's installments in general (:meth:`lift`).
    """

    def __init__(self, positive_weight: float) -> None:
        self.positive_weight = positive_weight
        self.models: dict[int, compose.Pipeline] = {}
        self.labels: dict[int, int] = {}
        self.positives: dict[int, int] = {}
        #: Running mean of the risk the classifier predicted for the partition's installments.
        self.typical: dict[int, float] = {}

    def learn(self, partition: int, snapshots: Iterable[list[float]], missed: bool) -> None:
        """Learn an installment's feature snapshots once its outcome is known."""
        model = self.models.get(partition)
        if model is None:
            model = self.models[partition] = _new_model(self.positive_weight)
        for vector in snapshots:
            # Snapshots of an older version (fewer features) are dropped, not misread.
            if len(vector) == len(FEATURES):
                model.learn_one(dict(zip(FEATURES, vector, strict=True)), missed)
                self.labels[partition] = self.labels.get(partition, 0) + 1
                self.positives[partition] = self.positives.get(partition, 0) + missed

    def lift(
        self, partition: int, features: dict[str, float], min_labels: int, min_misses: int
    ) -> tuple[float, float, float] | None:
        """The prediction's lift over the partition's running mean, the prediction and that
        mean (which it moves); None until the model has learnt enough outcomes and misses."""
        model = self.models.get(partition)
        labels = self.labels.get(partition, 0)
        positives = self.positives.get(partition, 0)
        if model is None or labels < min_labels or positives < min_misses:
            return None
        probability = float(model.predict_proba_one(features).get(True, 0.0))
        typical = self.typical.get(partition, probability)
        typical += TYPICAL_WEIGHT * (probability - typical)
        self.typical[partition] = typical
        return probability / max(typical, 1e-9), probability, typical

    def top(self, partition: int, features: dict[str, float]) -> str:
        """The features that raised the prediction most, with their contributions."""
        model = self.models[partition]
        scaled = model["StandardScaler"].transform_one(features)
        weights = model["LogisticRegression"].weights
        contributions = sorted(
            ((weights.get(name, 0.0) * scaled.get(name, 0.0), name) for name in FEATURES),
            reverse=True,
        )
        top = ", ".join(f"{name} ({value:+.2f})" for value, name in contributions[:3] if value > 0)
        return top or "nothing"

    def checkpoint(
        self, partition: int
    ) -> tuple[compose.Pipeline | None, int, int, float | None] | None:
        """What a checkpoint keeps of the partition (None: nothing learnt)."""
        if partition not in self.models:
            return None
        return (
            self.models[partition],
            self.labels.get(partition, 0),
            self.positives.get(partition, 0),
            self.typical.get(partition),
        )

    def load(
        self,
        partition: int,
        model: compose.Pipeline | None,
        labels: int,
        positives: int,
        typical: float | None,
    ) -> None:
        """Take back what :meth:`checkpoint` gave (a missing model or mean stays missing)."""
        if model is not None:
            self.models[partition] = model
        self.labels[partition] = labels
        self.positives[partition] = positives
        if typical is not None:
            self.typical[partition] = typical
