"""Checking what callers hand the registry before it is stored: tags, run names and inputs, and
turning config and metrics into plain JSON values.

Tags and names that cannot be stored raise ``ConfigError`` naming the setting; malformed inputs
and values with no JSON form raise ``ValueError`` and ``TypeError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from segmint.exceptions import ConfigError

__all__ = ["check_inputs", "check_name", "check_tag", "jsonable"]

_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RESERVED_REFS = frozenset({"latest"})


def check_tag(tag: str) -> str:
    """The tag, if it may name a run: 1 to 64 letters, digits, '.', '_' or '-', and not a
    reserved reference such as ``latest``."""
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise ConfigError(
            [
                f"tag {tag!r} is not allowed: use 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            ],
            settings=("tag",),
        )
    if tag in _RESERVED_REFS:
        raise ConfigError(
            [f"tag {tag!r} is reserved: it always means the newest succeeded run"],
            settings=("tag",),
        )
    return tag


def check_name(name: str | None) -> str | None:
    """The run name stripped of surrounding spaces: 1 to 200 printable characters."""
    if name is None:
        return None
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 200 or any(ch < " " for ch in cleaned):
        raise ConfigError(
            [f"run name {name!r} is not allowed: use 1 to 200 printable characters"],
            settings=("name",),
        )
    return cleaned


def jsonable(value: Any, where: str) -> Any:
    """Plain JSON values from what callers hand over (numpy scalars and arrays, paths, dates,
    pydantic models). Non-finite floats become null: PostgreSQL's JSON has no NaN."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): jsonable(item, where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item, where) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="json"), where)
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        return jsonable(value.item(), where)  # a numpy / pandas scalar
    if callable(getattr(value, "tolist", None)):
        return jsonable(value.tolist(), where)  # a numpy array
    raise TypeError(f"{where}: a {type(value).__name__} cannot be stored as JSON")


def check_inputs(
    inputs: Sequence[Mapping[str, Any]], *, hashed: bool = True
) -> list[dict[str, Any]]:
    """Each input needs a ``path``; a finished run's inputs also need their ``sha256`` (a
    running one may not have read them yet)."""
    keys = ("path", "sha256") if hashed else ("path",)
    checked = []
    for position, item in enumerate(inputs):
        if not isinstance(item, Mapping) or not all(
            isinstance(item.get(key), str) and item.get(key) for key in keys
        ):
            need = "a 'path' and a 'sha256' string" if hashed else "a 'path' string"
            raise ValueError(f"inputs[{position}] needs {need}: {item!r}")
        checked.append(jsonable(item, f"inputs[{position}]"))
    return checked
