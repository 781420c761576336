"""Who the command line records in the audit trail: a configured operator, or the OS user."""

from __future__ import annotations

from streams.control.store import default_author

__all__ = ["operator_name"]


def operator_name(configured: str = "") -> tuple[str, str]:
    """The name ``lendwatch thresholds`` records, and where it comes from, to say so.

    ``configured`` is ``LW_OPERATOR``: a deployment names its operators there (a shared
    admin host, a CI job). Otherwise the OS user as ``login@host``. Never a name typed on
    the command line for one change.
    """
    name = configured.strip()
    if name:
        return name, "the operator name in LW_OPERATOR"
    return default_author(), "the OS user (LW_OPERATOR names an operator instead)"
