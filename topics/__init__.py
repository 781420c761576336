"""The event contract: topic names, records and their validation."""

from topics.names import (
    ABNORMAL_BEHAVIOUR,
    CATEGORIES,
    CONTRACT_VERSION,
    DELINQUENCY_RISK,
    FALSIFIED_FLOW,
    Source,
    TopicNames,
)
from topics.records import Alert, DeadLetter, Geo, Login, Reason, Repayment, Transaction
from topics.validate import ContractError, InputRecord, check_key, decode, parse_value

__all__ = [
    "ABNORMAL_BEHAVIOUR",
    "CATEGORIES",
    "CONTRACT_VERSION",
    "DELINQUENCY_RISK",
    "FALSIFIED_FLOW",
    "Alert",
    "ContractError",
    "DeadLetter",
    "Geo",
    "InputRecord",
    "Login",
    "Reason",
    "Repayment",
    "Source",
    "TopicNames",
    "Transaction",
    "check_key",
    "decode",
    "parse_value",
]
