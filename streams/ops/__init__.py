"""Operators' commands: the ``lendwatch`` entry, run, tail, explain, status, risk, embedded
services and topic admin."""
