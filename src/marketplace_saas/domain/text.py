"""Text that every database column can hold: valid Unicode (no lone surrogate), no NUL.

JSON can carry both (`"\\ud800"`, `"\\u0000"`); PostgreSQL refuses them, and a lone surrogate
cannot even be written back as UTF-8 in an answer. Inputs are checked with `is_storable` and
refused with a reason before they reach a row or an answer.
"""

from __future__ import annotations


def is_storable(value: str) -> bool:
    """True when `value` encodes as UTF-8 and holds no NUL character."""
    if "\x00" in value:
        return False
    if value.isascii():  # the usual case: ASCII is always valid UTF-8
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
