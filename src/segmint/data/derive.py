"""Derived customer columns: ``Total_Spend = MntWines + MntFruits + ...``.

Expressions are arithmetic only — column names, numbers, ``+ - * /``, parentheses and
unary minus — parsed with Python's ``ast`` and evaluated column-wise with pandas. Nothing is
``eval``-ed, so a config file cannot run code. Column names that are not Python identifiers
go in backticks: ``Total = `Annual Income (k$)` * 1000``. A missing value in any input gives
a missing result (pandas' arithmetic), which later stages impute and report.

Written here rather than using ``DataFrame.eval`` because that accepts function calls and
attribute access, and its errors name pandas internals instead of the user's column.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from collections.abc import Callable

import pandas as pd

from segmint.exceptions import ConfigError

_OPS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_BACKTICK = re.compile(r"`([^`]+)`")


def parse_assignments(items: list[str], *, option: str = "derive") -> dict[str, str]:
    """``["Name=expr", ...]`` → ``{"Name": "expr"}``, in order; ``option`` is the setting the
    items come from, as the error names it."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, expr = item.partition("=")
        if not sep or not name.strip() or not expr.strip():
            raise ConfigError(
                [f"{option} expects NAME=EXPRESSION, got {item!r}"], settings=(option,)
            )
        out[name.strip()] = expr.strip()
    return out


def derive_columns(
    frame: pd.DataFrame, derive: dict[str, str], *, source: str = "derive"
) -> pd.DataFrame:
    """Return ``frame`` with one new numeric column per ``derive`` entry (in order, so a
    later expression may use an earlier result). Raises ``ConfigError`` listing every
    problem: syntax, unknown columns (with close matches), non-numeric inputs."""
    out = frame.copy()
    problems: list[str] = []
    for name, expr in derive.items():
        if name in out.columns:
            problems.append(f"{source}: {name!r} already exists; choose another name")
            continue
        names: dict[str, str] = {}

        def _swap(m: re.Match[str], names: dict[str, str] = names) -> str:
            key = f"__col{len(names)}"
            names[key] = m.group(1)
            return key

        text = _BACKTICK.sub(_swap, expr)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            problems.append(f"{source}: {name}={expr!r} is not a valid expression ({exc.msg})")
            continue
        try:
            out[name] = _eval(tree.body, out, names)
        except _Problem as p:
            problems.append(f"{source}: {name}={expr!r}: {p}")
    if problems:
        raise ConfigError(problems, settings=("derive",))
    return out


class _Problem(Exception):
    pass


def _column(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame.columns:
        close = difflib.get_close_matches(col, [str(c) for c in frame.columns], n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise _Problem(f"no column {col!r}{hint}")
    s = frame[col]
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float64")
    if not pd.api.types.is_numeric_dtype(s):
        raise _Problem(f"column {col!r} is not numeric (it holds {s.dtype} values)")
    return s.astype("float64")


def _eval(node: ast.AST, frame: pd.DataFrame, names: dict[str, str]) -> pd.Series | float:
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _eval(node.left, frame, names)
        right = _eval(node.right, frame, names)
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _eval(node.operand, frame, names)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return _column(frame, names.get(node.id, node.id))
    raise _Problem(
        f"only column names, numbers, + - * / and parentheses are allowed "
        f"(found {ast.unparse(node)!r})"
    )
