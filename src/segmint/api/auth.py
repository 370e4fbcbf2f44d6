"""API keys: where they come from, and checking one in constant time.

Every ``/v1`` route but ``/v1/health`` needs a key, sent as ``Authorization: Bearer KEY`` or
``X-API-Key: KEY``. Keys come from ``SEGMINT_API_KEY`` (``ServerSettings.api_keys``); when none
is configured the workspace's own key is used, created on first use as ``<workspace>/api-key``
with mode 0600 (as Jupyter does with its token), so a server is never open by default.

A key is compared by the SHA-256 of both sides with ``hmac.compare_digest`` against every
accepted key, so neither the length nor the first differing byte of a guess shows in the time
a refusal takes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from segmint.exceptions import ConfigError

__all__ = ["KEY_FILE", "Keys", "load_or_create_key"]

KEY_FILE = "api-key"


@dataclass(frozen=True)
class Keys:
    """The accepted keys (as digests) and where they came from."""

    digests: tuple[bytes, ...]
    source: str  # "SEGMINT_API_KEY" or the key file's path
    created: str | None = None  # the key, only when it was generated just now

    @classmethod
    def of(cls, keys: tuple[str, ...] | list[str], source: str, created: str | None = None) -> Keys:
        if not keys:
            raise ValueError("at least one API key is needed")
        return cls(tuple(_digest(k) for k in keys), source, created)

    def accepts(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is one of the keys; the time taken does not depend on which
        key, if any, it matches, nor on how much of it is right."""
        if not candidate:
            return False
        got = _digest(candidate)
        ok = False
        for want in self.digests:
            ok |= hmac.compare_digest(got, want)
        return ok


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def load_or_create_key(workspace_root: Path) -> tuple[str, bool]:
    """The workspace's key and whether it was created now; created with mode 0600, and refused
    when the file is readable by others (someone may have copied it)."""
    path = workspace_root / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path), False
    except OSError as exc:
        raise ConfigError(
            [f"cannot create the API key file {path}: {exc.strerror}"], settings=("api_keys",)
        ) from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key, True


def _read_key(path: Path) -> str:
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [f"cannot read the API key file {path}: {exc}"], settings=("api_keys",)
        ) from None
    if mode & 0o077:
        raise ConfigError(
            [
                f"the API key file {path} is readable by other users (mode {mode:o}); "
                f"make it private (chmod 600 {path}) or delete it to have a new key made"
            ],
            settings=("api_keys",),
        )
    if len(text) < 16 or not text.isascii() or not text.isprintable() or " " in text:
        raise ConfigError(
            [f"the API key file {path} does not hold a key; delete it to have a new one made"],
            settings=("api_keys",),
        )
    return text
