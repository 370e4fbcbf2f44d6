"""Sign model files with this installation's secret, and check the signature before loading.

Why: the type allow-list (``segmint.model_types``) stops a file from running code, but it
cannot tell a model this installation fitted from a different model of the same types
(another run's estimator, hand-edited centres). An HMAC-SHA256 over the model file's bytes,
kept beside it in ``model.skops.sig`` (JSON: algorithm, key id, MAC), proves that whoever
wrote the file held this installation's secret. It is checked on the raw bytes, before
anything in the file is parsed or built.

The secret (one place decides it: ``load_key``; a later change will move the default into
a "workspace" folder, so keep every lookup going through ``load_key``):

1. ``SEGMINT_SIGNING_KEY``, the secret itself (at least 32 characters) — for servers, CI,
   and machines that share one key;
2. otherwise the key file ``SEGMINT_KEY_FILE``, else ``$XDG_CONFIG_HOME/segmint/signing.key``
   (default ``~/.config/segmint/signing.key``). It is created on first use with 32 random
   bytes (hex) from ``secrets``, mode 0600, atomically with ``O_CREAT | O_EXCL`` so two
   processes starting at once agree on one key; its folder is created 0700. Like ssh,
   segmint refuses a key file other users may read or write.

The key file's text and ``SEGMINT_SIGNING_KEY`` are used the same way (stripped, UTF-8), so
``SEGMINT_SIGNING_KEY=$(cat ~/.config/segmint/signing.key)`` on another machine gives it the
same key (and key id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segmint.exceptions import ArtifactError

KEY_ENV = "SEGMINT_SIGNING_KEY"
KEY_FILE_ENV = "SEGMINT_KEY_FILE"
MIN_SECRET_CHARS = 32
ALGORITHM = "HMAC-SHA256"
SUFFIX = ".sig"
_MOVE_HINT = (
    "To use a model from another machine, either give both machines the same key "
    f"({KEY_ENV}) or, after checking where the run came from, run 'segmint trust RUN_DIR' "
    "to check its types and sign it with this machine's key."
)


@dataclass(frozen=True)
class SigningKey:
    """This installation's secret and where it came from (for messages)."""

    secret: bytes
    source: str

    @property
    def key_id(self) -> str:
        """A short, public fingerprint of the secret (not usable to forge a MAC)."""
        return hashlib.sha256(b"segmint-key-id\0" + self.secret).hexdigest()[:12]


def default_key_file() -> Path:
    """``SEGMINT_KEY_FILE``, else ``$XDG_CONFIG_HOME/segmint/signing.key`` (XDG's default
    ``~/.config``; a relative XDG_CONFIG_HOME is ignored, as the XDG spec says)."""
    explicit = os.environ.get(KEY_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "segmint" / "signing.key"


def load_key() -> SigningKey:
    """This installation's signing key: ``SEGMINT_SIGNING_KEY`` if set, else the key file
    (created on first use). The only place that decides where the key lives."""
    env = os.environ.get(KEY_ENV)
    if env is not None:
        secret = env.strip()
        if len(secret) < MIN_SECRET_CHARS:
            raise ArtifactError(
                f"{KEY_ENV} is set but holds {len(secret)} character(s); a signing key needs "
                f"at least {MIN_SECRET_CHARS}. Set it to a long random value (for example the "
                'output of: python -c "import secrets; print(secrets.token_hex(32))") or '
                "unset it to use the key file.",
                code="model.signing_key",
            )
        return SigningKey(secret.encode("utf-8"), KEY_ENV)
    path = default_key_file()
    return SigningKey(_read_or_create(path).encode("utf-8"), str(path))


def _read_or_create(path: Path) -> str:
    for _ in range(3):
        try:
            return _read_key_file(path)
        except FileNotFoundError:
            _create_key_file(path)  # loses the race quietly if another process created it
    return _read_key_file(path)


def _create_key_file(path: Path) -> None:
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise ArtifactError(
            f"{path}: cannot create the model signing key ({exc.strerror or exc}). Make the "
            f"folder writable, point {KEY_FILE_ENV} at a writable place, or set {KEY_ENV}.",
            code="model.signing_key",
        ) from None
    try:
        os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path) -> str:
    """The key file's secret; waits briefly while another process is still writing it."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ArtifactError(
                f"{path}: cannot read the model signing key ({exc}).", code="model.signing_key"
            ) from None
        _check_key_file(path, st)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ArtifactError(
                f"{path}: cannot read the model signing key ({exc}).", code="model.signing_key"
            ) from None
        if len(text) >= MIN_SECRET_CHARS:
            return text
        if time.monotonic() > deadline:
            raise ArtifactError(
                f"{path}: the model signing key file holds {len(text)} character(s), fewer "
                f"than {MIN_SECRET_CHARS}. Delete it to have a new key made (models signed "
                "with the old one then need 'segmint trust RUN_DIR'), or write a longer "
                "secret into it.",
                code="model.signing_key",
            )
        time.sleep(0.02)  # created but not yet written by a concurrent process


def _check_key_file(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(
            f"{path}: the model signing key must be a regular file.", code="model.signing_key"
        )
    if os.name == "nt":  # POSIX permission bits mean nothing there
        return
    if st.st_mode & 0o077:
        raise ArtifactError(
            f"{path}: the model signing key is readable or writable by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}), so anyone on this machine could sign a model; "
            f"it was not used. Run: chmod 600 {path}",
            code="model.signing_key",
        )


def signature_path(model: Path) -> Path:
    """``model.skops`` → ``model.skops.sig``."""
    return model.with_name(model.name + SUFFIX)


def mac(data: bytes, key: SigningKey) -> str:
    return hmac.new(key.secret, data, hashlib.sha256).hexdigest()


def write_signature(model: Path, data: bytes, key: SigningKey | None = None) -> SigningKey:
    """Write ``model``'s sidecar for the bytes ``data`` (atomically: temp file + rename)."""
    key = key or load_key()
    sig = {"algorithm": ALGORITHM, "key_id": key.key_id, "mac": mac(data, key)}
    target = signature_path(model)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sig, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return key


def read_signature(model: Path) -> dict[str, Any] | None:
    """The sidecar's content, ``None`` when there is none; a clear error when unreadable."""
    path = signature_path(model)
    try:
        sig = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: the model's signature file is unreadable ({exc}); the model was not "
            "loaded. Re-run the segmentation, or check the run and use 'segmint trust RUN_DIR'.",
            code="model.untrusted",
        ) from None
    fields = ("algorithm", "key_id", "mac")
    if not isinstance(sig, dict) or not all(isinstance(sig.get(f), str) for f in fields):
        raise ArtifactError(
            f"{path}: the model's signature file lacks {', '.join(fields)}; the model was not "
            "loaded. Re-run the segmentation, or check the run and use 'segmint trust RUN_DIR'.",
            code="model.untrusted",
        )
    return sig


def verify(model: Path, data: bytes, key: SigningKey | None = None) -> SigningKey:
    """Refuse ``data`` (the bytes of ``model``) unless this installation's key signed it."""
    sig = read_signature(model)
    if sig is None:
        raise ArtifactError(
            f"{model}: the model is not signed ({signature_path(model).name} is missing), so "
            "segmint cannot tell that it wrote this file; it was not loaded. A model saved by "
            "segmint before signing existed needs a new run. " + _MOVE_HINT,
            code="model.untrusted",
        )
    if sig["algorithm"] != ALGORITHM:
        raise ArtifactError(
            f"{model}: the signature uses {sig['algorithm']!r}; segmint signs with {ALGORITHM}. "
            "The model was not loaded.",
            code="model.untrusted",
        )
    key = key or load_key()
    if sig["key_id"] != key.key_id:
        raise ArtifactError(
            f"{model}: the model was signed by a different key (key id {sig['key_id']}; this "
            f"machine's key, from {key.source}, is {key.key_id}). It was probably saved on "
            "another machine or with another SEGMINT_SIGNING_KEY; it was not loaded. " + _MOVE_HINT,
            code="model.untrusted",
        )
    if not hmac.compare_digest(sig["mac"], mac(data, key)):
        raise ArtifactError(
            f"{model}: the signature does not match the file: the model was changed after it "
            "was saved (or replaced by another file); it was not loaded. Re-run the "
            "segmentation to get a model you can trust.",
            code="model.untrusted",
        )
    return key


def status(model: Path, data: bytes, key: SigningKey) -> str:
    """A short description of the model's current signature (for ``segmint trust``)."""
    try:
        sig = read_signature(model)
    except ArtifactError:
        return "signature file unreadable"
    if sig is None:
        return "unsigned"
    if sig["algorithm"] != ALGORITHM:
        return f"signed with {sig['algorithm']!r}, which segmint does not use"
    if sig["key_id"] != key.key_id:
        return f"signed by another key ({sig['key_id']})"
    if not hmac.compare_digest(sig["mac"], mac(data, key)):
        return "signature did not match the file (changed after it was saved)"
    return "already signed by this machine's key"
