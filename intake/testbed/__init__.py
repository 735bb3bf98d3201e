"""A live test bed: a real Asterisk 22 started from `dialplans/`, SIP phones (sipp), `intake serve` as a process.

Used by `tests/live/` and `intake bench calls`. Nothing here runs in production.
"""
