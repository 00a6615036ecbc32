"""The opaque ``next`` token of command listings: keyset paging on (time, id), no OFFSET.

The token names the ordering it belongs to, so a token of one listing given to another is a
clear 400 rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson

from citydesk.errors import InvalidQuery


def token(order: str, at: datetime, last_id: int) -> str:
    raw = orjson.dumps({"o": order, "t": at.isoformat(), "i": last_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after(token: str, order: str) -> tuple[datetime, int]:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if raw["o"] != order:
            raise ValueError("token of another listing")
        at = datetime.fromisoformat(raw["t"])
        if at.tzinfo is None:
            raise ValueError("naive time")
        return at, int(raw["i"])
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidQuery("invalid next token: start again from the first page") from None
