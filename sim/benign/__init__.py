"""Benign behaviour: what every borrower does each day (flows, sessions, repayments)."""
