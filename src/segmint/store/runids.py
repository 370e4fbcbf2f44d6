"""Run ids: minting them, reading them back as typed, and the creation time they hold.

A run id is 14 lowercase Crockford base32 characters (no i, l, o, u) that sort by creation
time: 42 bits of milliseconds since 1970, then 28 random bits (see ``new_run_id``). Typed ids
are read by Crockford's rules (``normalise_id``), and an id prefix of at least ``MIN_PREFIX``
characters may stand for the id when it is unique.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from datetime import UTC, datetime

__all__ = [
    "ID_LENGTH",
    "MIN_PREFIX",
    "is_id_prefix",
    "is_run_id",
    "new_run_id",
    "normalise_id",
    "run_id_time",
]

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_BITS = 42  # milliseconds since 1970: enough until the year 2109
_RANDOM_BITS = 28
ID_LENGTH = (_TIME_BITS + _RANDOM_BITS) // 5  # 70 bits → 14 characters
_ID_RE = re.compile(f"[{_CROCKFORD}]{{{ID_LENGTH}}}")
_PREFIX_RE = re.compile(f"[{_CROCKFORD}]{{4,{ID_LENGTH}}}")
MIN_PREFIX = 4

_id_lock = threading.Lock()
_last_id: tuple[int, int] = (0, 0)


def _reset_id_state() -> None:
    global _last_id
    _last_id = (0, 0)


# A forked child must not continue the parent's in-millisecond counter: both would mint the
# same next id.
os.register_at_fork(after_in_child=_reset_id_state)


def new_run_id() -> str:
    """A new run id: 14 lowercase Crockford base32 characters (no i, l, o, u).

    The first 42 bits are the creation time in milliseconds since 1970 and the last 28 bits are
    random, so ids sort by creation time as text, two processes minting an id in the same
    millisecond collide with odds of 1 in 268 million (and the primary key turns even that into
    a retry), and the id stays short enough to read aloud. Within one process ids are strictly
    increasing: a second id in the same millisecond (or after the clock steps back) counts up
    from the previous one instead of drawing new random bits. (A 48-bit time plus 32 random
    bits, as in ULIDs, needs 16 characters; 42 + 28 keeps 14.)
    """
    global _last_id
    ms = time.time_ns() // 1_000_000
    with _id_lock:
        last_ms, last_random = _last_id
        if ms > last_ms:
            rand = secrets.randbits(_RANDOM_BITS)
        elif last_random + 1 < (1 << _RANDOM_BITS):
            ms, rand = last_ms, last_random + 1
        else:
            ms, rand = last_ms + 1, secrets.randbits(_RANDOM_BITS)
        _last_id = (ms, rand)
    if ms >> _TIME_BITS:
        raise OverflowError("run ids hold milliseconds since 1970 in 42 bits (until 2109)")
    value = (ms << _RANDOM_BITS) | rand
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(65, -1, -5))


def run_id_time(run_id: str) -> datetime:
    """The creation time (UTC, millisecond precision) encoded in a run id."""
    if not _ID_RE.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    value = 0
    for char in run_id:
        value = (value << 5) | _CROCKFORD.index(char)
    return datetime.fromtimestamp((value >> _RANDOM_BITS) / 1000, UTC)


def normalise_id(text: str) -> str:
    """Crockford's reading rules: case-insensitive, I and L read as 1, O as 0."""
    return text.strip().lower().translate(str.maketrans("ilo", "110"))


def is_run_id(text: str) -> bool:
    """Whether ``text`` (already normalised) has the shape of a whole run id."""
    return _ID_RE.fullmatch(text) is not None


def is_id_prefix(text: str) -> bool:
    """Whether ``text`` (already normalised) can be the start of a run id: ``MIN_PREFIX`` to
    ``ID_LENGTH`` id characters."""
    return _PREFIX_RE.fullmatch(text) is not None
