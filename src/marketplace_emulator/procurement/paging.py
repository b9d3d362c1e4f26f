"""Opaque page tokens for `accounts.list` and `entitlements.list`.

A token carries the offset of the next page and a digest of the query it belongs to, so a token
from another query or a forged one answers 400 INVALID_ARGUMENT instead of a wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import TypeVar

from marketplace_emulator.procurement.exceptions import InvalidArgument

T = TypeVar("T")


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8")).hexdigest()[:16]


def encode_token(offset: int, query: str) -> str:
    raw = json.dumps({"o": offset, "q": _digest(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, query: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        offset = data["o"]
        digest = data["q"]
    except (ValueError, TypeError, KeyError, UnicodeError):
        raise InvalidArgument(f"Invalid page token {token!r}.") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidArgument(f"Invalid page token {token!r}.")
    if digest != _digest(query):
        raise InvalidArgument("The page token does not belong to this query.")
    return offset


def paginate(
    items: Sequence[T], page_size: int, page_token: str, query: str
) -> tuple[list[T], str | None]:
    """One page of `items` and the token of the next page (None on the last page)."""
    offset = decode_token(page_token, query) if page_token else 0
    end = offset + page_size
    page = list(items[offset:end])
    return page, (encode_token(end, query) if end < len(items) else None)


def paginate_stream(
    items: Iterable[T], page_size: int, page_token: str, query: str
) -> tuple[list[T], str | None]:
    """As `paginate`, over items produced lazily: stops after the first item past the page."""
    offset = decode_token(page_token, query) if page_token else 0
    end = offset + page_size
    page: list[T] = []
    for index, item in enumerate(items):
        if index >= end:
            return page, encode_token(end, query)
        if index >= offset:
            page.append(item)
    return page, None
