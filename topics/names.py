"""Topic names of the event contract, with their defaults and environment overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ABNORMAL_BEHAVIOUR",
    "CATEGORIES",
    "CONTRACT_VERSION",
    "DELINQUENCY_RISK",
    "FALSIFIED_FLOW",
    "Source",
    "TopicNames",
]

#: Version of the event contract. Minor: fields added (old consumers keep working).
#: Major: a field removed, renamed or retyped, or its meaning changed (2.0: the ids in alerts
#: are keyed hashes when personal data is masked; 2.1: the labels file; 2.2: verdicts on
#: ``lending.feedback`` checked, learnt from, and read from replay files). See docs/contract.md.
CONTRACT_VERSION = "2.2"

#: The three alert categories, one alert topic each: what detectors report and what the
#: simulator's ground truth is labelled with, so both take the names from the contract.
FALSIFIED_FLOW = "falsified_flow"
ABNORMAL_BEHAVIOUR = "abnormal_behaviour"
DELINQUENCY_RISK = "delinquency_risk"
CATEGORIES = (FALSIFIED_FLOW, ABNORMAL_BEHAVIOUR, DELINQUENCY_RISK)


class Source(StrEnum):
    """The three input streams a platform produces."""

    TRANSACTIONS = "transactions"
    LOGINS = "logins"
    REPAYMENTS = "repayments"


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Names of every topic the pipeline reads or writes."""

    transactions: str = "lending.transactions"
    logins: str = "lending.logins"
    repayments: str = "lending.repayments"
    deadletter: str = "lending.deadletter"
    alerts_fraud: str = "alerts.fraud"
    alerts_security: str = "alerts.security"
    alerts_collections: str = "alerts.collections"
    #: Alerts of candidate thresholds run in shadow: never on the teams' topics above.
    alerts_shadow: str = "alerts.shadow"
    #: Verdicts on alerts (confirmed, dismissed, duplicate), keyed by the alert's borrower id.
    feedback: str = "lending.feedback"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TopicNames:
        """Read overrides such as ``LW_TOPIC_TRANSACTIONS`` from the environment."""
        env = dict(os.environ) if env is None else env
        defaults = cls()
        return cls(
            **{
                name: env.get(f"LW_TOPIC_{name.upper()}", getattr(defaults, name))
                for name in cls.__dataclass_fields__
            }
        )

    def input_topic(self, source: Source) -> str:
        return str(getattr(self, source.value))

    def source_of(self, topic: str) -> Source | None:
        """Which input stream a topic name carries, if any (replay files name topics)."""
        for source in Source:
            if self.input_topic(source) == topic:
                return source
        return None

    def alert_topic(self, category: str) -> str:
        return {
            FALSIFIED_FLOW: self.alerts_fraud,
            ABNORMAL_BEHAVIOUR: self.alerts_security,
            DELINQUENCY_RISK: self.alerts_collections,
        }[category]

    def alert_topics(self) -> list[str]:
        """The three alert topics: fraud, security, collections."""
        return [self.alerts_fraud, self.alerts_security, self.alerts_collections]

    def all(self) -> list[str]:
        return [getattr(self, name) for name in self.__dataclass_fields__]
