"""Names for uploaded input files: what the server writes into a run's upload folder.

Why a module of its own: a caller's file name is untrusted text (``../../etc/x``, a Windows
path, control characters, a suffix the readers would misread), yet the name is kept because
its suffix tells ``data.readers`` the format. ``safe_file_name`` keeps only a cleaned stem and
a suffix the readers accept; the suffixes are written out here so that checking a name does
not import the query engine into the server (a test checks them against ``data.readers``).
"""

from __future__ import annotations

import re
import unicodedata

from segmint.exceptions import InputError

__all__ = ["CSV_SUFFIXES", "EXCEL_SUFFIXES", "INPUT_SUFFIXES", "PARQUET_SUFFIXES", "safe_file_name"]

# What ``data.readers`` reads (by the last suffix; ``.gz`` around CSV or Parquet).
CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".tab")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
INPUT_SUFFIXES = (*CSV_SUFFIXES, *PARQUET_SUFFIXES, *EXCEL_SUFFIXES)
_STEM_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 80


def safe_file_name(name: str | None, index: int) -> str:
    """A file name for an uploaded input that is safe to create in the run's upload folder
    and that the readers recognise: ``<index>-<stem><suffix>``.

    Only the last path component of ``name`` is kept (no ``..``, no folders, no drive), its
    characters are reduced to ``A-Z a-z 0-9 . _ -``, and the suffix must be one the readers
    accept (``INPUT_SUFFIXES``, optionally followed by ``.gz``): a legacy ``.xls``, ``.json``
    or a missing suffix is refused with ``InputError`` naming what is accepted. The index
    keeps two uploads with the same name apart.
    """
    raw = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    lower = text.lower()
    gz = lower.endswith(".gz")
    base = text[:-3] if gz else text
    stem, dot, suffix = base.rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in INPUT_SUFFIXES or (gz and suffix in EXCEL_SUFFIXES):
        raise InputError(
            "an uploaded file's name must end in a suffix segmint reads.",
            path=raw or "(no file name)",
            expected=f"one of {', '.join(INPUT_SUFFIXES)} (CSV or Parquet may add .gz)",
            code="input.unreadable",
        )
    clean = _STEM_CHARS.sub("_", stem).strip("._-")[:_MAX_STEM] or "upload"
    return f"{index:02d}-{clean}{suffix}{'.gz' if gz else ''}"
