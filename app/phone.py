"""Phone number helpers: E.164 normalisation and masking for logs and storage."""

from __future__ import annotations

import re

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_DIGITS = re.compile(r"\D+")


def normalize(number: str) -> str:
    """Return ``number`` in E.164 form (``+`` and 7 to 15 digits).

    Separators (spaces, dashes, dots, parentheses) are dropped; a leading ``00`` becomes
    ``+``. Raises ``ValueError`` when the result is not E.164 (ITU-T E.164).
    """
    raw = number.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    digits = _DIGITS.sub("", raw)
    candidate = "+" + digits
    if not raw.startswith("+") and len(digits) == 10:  # bare North American number
        candidate = "+1" + digits
    if not _E164.match(candidate):
        raise ValueError(f"not an E.164 phone number: {mask(number)}")
    return candidate


def is_e164(number: str) -> bool:
    return bool(_E164.match(number))


def mask(number: str | None) -> str:
    """Mask a phone number for logs and stored records: ``+1555***4567``.

    Keeps the first 4 characters and the last 4 digits; anything shorter than 8
    characters is masked whole. ``None`` and "" give "".
    """
    if not number:
        return ""
    n = number.strip()
    if len(n) < 8:
        return "*" * len(n)
    return n[:4] + "*" * (len(n) - 8) + n[-4:]
