"""Phone numbers: E.164 with `phonenumbers`, Vietnam as the default region.

A number that does not parse is kept raw and flagged, never rejected: a
report from a caller whose number we cannot read is still a report.
"""

from __future__ import annotations

import re

import phonenumbers

from intake.core.model import Phone

DEFAULT_REGION = "VN"

#: Vietnamese emergency short codes (112 is the one number; 113/114/115 are the old agency lines).
EMERGENCY_SHORT_CODES: dict[str, str] = {
    "112": "emergency",
    "113": "police",
    "114": "fire",
    "115": "medical",
}

_JUNK = re.compile(r"[^\d+]")


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> Phone:
    raw = raw.strip()
    digits = _JUNK.sub("", raw)
    if digits in EMERGENCY_SHORT_CODES:
        return Phone(raw=raw, e164=None, valid=True, short_code=digits)
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return Phone(raw=raw, e164=None, valid=False)
    if not phonenumbers.is_valid_number(parsed):
        return Phone(raw=raw, e164=None, valid=False)
    return Phone(raw=raw, e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), valid=True)


def dialled_line(raw: str | None) -> str | None:
    """The emergency line a call was made to ('112'..'115'), or None."""
    if not raw:
        return None
    digits = _JUNK.sub("", raw).lstrip("+")
    for prefix in ("84", "0"):
        if digits.startswith(prefix) and digits[len(prefix):] in EMERGENCY_SHORT_CODES:
            digits = digits[len(prefix):]
    return digits if digits in EMERGENCY_SHORT_CODES else None
