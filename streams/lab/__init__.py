"""Offline runs of the detectors' code over history: replay, evaluate, backtest."""
