"""Hotline Intake: one emergency number, many doors, one incident queue."""

__version__ = "0.1.0"
