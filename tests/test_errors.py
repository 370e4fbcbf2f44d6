"""Every error of segmint lives in ``segmint.exceptions`` with a stable code; the CLI's exit
codes and the coming API's HTTP statuses come from one table each; library messages name
settings, never command-line flags (the CLI adds the flag itself)."""

from __future__ import annotations

import ast
import importlib
import json
import pickle
import pkgutil
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import segmint
import segmint.exceptions as exceptions
from segmint.config import Settings
from segmint.exceptions import (
    EXIT_CODES,
    HTTP_STATUS,
    AmbiguousDatesError,
    AmbiguousRunError,
    ArtifactError,
    ConfigError,
    InputError,
    OutputError,
    RunNotFoundError,
    SegmintError,
    all_codes,
    error_classes,
    exit_code,
    http_status,
)

SRC = Path(segmint.__file__).resolve().parent
CODE = re.compile(r"[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*")
# a command-line flag: two dashes then a letter, not inside a longer dashed word
FLAG = re.compile(r"(?<![\w-])--[A-Za-z]")
# settings that are arguments of a library function rather than fields of ``Settings``
ARGUMENT_SETTINGS = {
    "calibration_end",
    "holdout_end",
    "every",
    "by",
    "on",
    "order",
    "customers",
    "config",
    "workspace",
    "name",
    "tag",
    "host",  # segmint serve's
    "port",
}


def _import_everything() -> None:
    """Import every module of segmint, so an error class defined anywhere is seen."""
    for info in pkgutil.walk_packages([str(SRC)], prefix="segmint."):
        if not info.name.startswith("segmint.store.migrations"):  # alembic's own scripts
            importlib.import_module(info.name)


def _segmint_classes() -> list[type[SegmintError]]:
    _import_everything()
    return [c for c in error_classes() if c.__module__.startswith("segmint.")]


def _declared(cls: type[SegmintError]) -> list[str]:
    """The codes a class declares itself (not the ones it inherits)."""
    own = [cls.__dict__["code"]] if "code" in cls.__dict__ else []
    return [*own, *cls.__dict__.get("specific_codes", ())]


def _make(cls: type[SegmintError], code: str) -> SegmintError:
    """An instance of ``cls`` carrying ``code``, whatever arguments the class takes."""
    if cls is RunNotFoundError:
        return RunNotFoundError("m", ref="x")
    if cls is AmbiguousRunError:
        return AmbiguousRunError("m", ref="x", candidates=["a", "b"])
    if issubclass(cls, ConfigError):
        return cls(["m"], code=code)
    return cls("m", code=code)


def _library_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "cli" not in p.relative_to(SRC).parts)


# ------------------------------------------------------------------ one home, stable codes


def test_every_error_class_lives_in_exceptions_and_declares_its_own_code():
    classes = _segmint_classes()
    assert {c.__name__ for c in classes} >= {
        "SegmintError",
        "InputError",
        "AmbiguousDatesError",
        "ConfigError",
        "OutputError",
        "ArtifactError",
        "ModelError",
        "LeakageError",
        "RunNotFoundError",
        "AmbiguousRunError",
        "RunStateError",
        "RegistryError",
    }
    for cls in classes:
        assert cls.__module__ == "segmint.exceptions", f"{cls} is defined outside exceptions.py"
        assert "code" in cls.__dict__, f"{cls.__name__} has no code of its own"
        for code in _declared(cls):
            assert CODE.fullmatch(code), f"{cls.__name__}: {code!r} is not area.what"
    assert SegmintError.code == "segmint.error"


def test_no_error_class_is_defined_outside_exceptions():
    """Statically too: no ``class ...Error`` below ``src/segmint`` except in exceptions.py
    (``derive._Problem`` is a private control-flow signal that never leaves its module; the
    CLI's ``Terminated`` is a signal, not an error)."""
    for path in SRC.rglob("*.py"):
        if path.name == "exceptions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not any(b.endswith("Error") for b in bases), (path, node.name)
                assert not node.name.endswith("Error"), (path, node.name)


def test_old_import_paths_still_name_the_same_classes():
    from segmint.data.parsing import AmbiguousDatesError as from_parsing
    from segmint.features.clv import ModelError as from_clv
    from segmint.predictive.churn import LeakageError as from_churn

    assert from_parsing is exceptions.AmbiguousDatesError
    assert from_clv is exceptions.ModelError
    assert from_churn is exceptions.LeakageError


def test_each_code_belongs_to_exactly_one_class():
    """No code is shared: ``isinstance`` and ``code`` never disagree, so an API can switch on
    either. (``SegmintError``'s own ``segmint.error`` is only for a bare base-class raise.)"""
    seen: dict[str, str] = {}
    for cls in _segmint_classes():
        for code in _declared(cls):
            assert code not in seen, f"{code} is declared by {seen[code]} and {cls.__name__}"
            seen[code] = cls.__name__
    assert set(seen) == set(all_codes())


def test_exit_and_http_tables_cover_every_code_and_nothing_else():
    codes = set(all_codes())
    assert set(EXIT_CODES) == codes
    assert set(HTTP_STATUS) == codes
    assert set(EXIT_CODES.values()) == {2}  # what users have always seen
    for code, status in HTTP_STATUS.items():
        assert 400 <= status < 600, code
        if code.startswith(("input.", "config.", "output.invalid", "run.", "churn.")):
            assert 400 <= status < 500, f"{code} is the caller's doing, not a server error"
    assert HTTP_STATUS["run.not_found"] == 404
    assert HTTP_STATUS["run.ambiguous"] == HTTP_STATUS["run.state"] == 409
    assert HTTP_STATUS["registry.unavailable"] == 503
    assert HTTP_STATUS["input.missing_column"] == HTTP_STATUS["input.invalid"] == 400


def test_every_instance_maps_through_the_tables():
    for cls in _segmint_classes():
        for code in _declared(cls):
            exc = _make(cls, code)
            assert exc.code == code
            assert exit_code(exc) == EXIT_CODES[code] == 2
            assert http_status(exc) == HTTP_STATUS[code]


def test_a_subclass_without_a_table_entry_maps_like_its_parent():
    class Custom(InputError):
        code = "custom.thing"

    exc = Custom("m")
    assert exit_code(exc) == 2 and http_status(exc) == HTTP_STATUS["input.invalid"]


def test_a_code_a_class_does_not_declare_is_refused():
    with pytest.raises(ValueError, match=re.escape("cannot carry code 'run.not_found'")):
        InputError("m", code="run.not_found")
    with pytest.raises(ValueError, match="cannot carry"):
        AmbiguousDatesError("m", code="input.missing_column")  # the subclass owns one code
    assert InputError("m", code="input.missing_column").code == "input.missing_column"
    assert InputError("m").code == "input.invalid" == InputError.code  # class default kept


def test_codes_given_at_raise_sites_are_declared_by_the_class_raised():
    """Every literal ``code=`` in the source is one its class may carry (the constructor
    checks at run time; this checks the raise sites no test reaches)."""
    classes = {c.__name__: c for c in _segmint_classes()}
    found = 0
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in classes):
                continue
            cls = classes[node.func.id]
            for kw in node.keywords:
                if kw.arg == "code":
                    assert isinstance(kw.value, ast.Constant), (path, node.lineno)
                    allowed = (cls.code, *cls.specific_codes)
                    assert kw.value.value in allowed, (path, node.lineno, kw.value.value)
                    found += 1
    assert found > 30  # the specific codes are used, not just declared


def test_settings_named_by_errors_exist():
    """Every setting an error names is a field of ``Settings`` (dotted) or an argument of a
    library function the CLI has an option for."""

    def fields(model: type, prefix: str = "") -> set[str]:
        out = set()
        for name, info in model.model_fields.items():
            out.add(prefix + name)
            sub = info.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                out |= fields(sub, f"{prefix}{name}.")
        return out

    from segmint.api.config import ServerSettings

    known = fields(Settings) | fields(ServerSettings) | ARGUMENT_SETTINGS
    named = 0
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "settings":
                values = node.value.elts if isinstance(node.value, ast.Tuple | ast.List) else []
                for value in values:
                    if isinstance(value, ast.Constant):
                        assert value.value in known, (path, value.value)
                        named += 1
    assert named > 20


def test_errors_pickle_with_their_code_settings_and_attributes():
    exc = InputError(
        "bad", path="a.csv", column="c", row=3, code="input.missing_column", settings=("x",)
    )
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is InputError and str(back) == str(exc)
    assert (back.code, back.settings, back.path, back.row) == (
        "input.missing_column",
        ("x",),
        "a.csv",
        3,
    )
    config = pickle.loads(pickle.dumps(ConfigError(["p1", "p2"], settings=["seed"])))
    assert config.problems == ["p1", "p2"] and config.settings == ("seed",)
    ambiguous = pickle.loads(pickle.dumps(AmbiguousRunError("m", ref="ab", candidates=["x"])))
    assert ambiguous.candidates == ["x"] and ambiguous.code == "run.ambiguous"


def test_a_single_setting_string_is_one_setting():
    assert OutputError("m", settings="out").settings == ("out",)


# ------------------------------------------------------------------ real raise sites


def _ingest(path: Path, **settings: object):
    from segmint.data import readers
    from segmint.data.ingest import ingest

    return ingest([str(path)], Settings.build(settings), readers.connect())


def test_a_missing_required_column_is_input_missing_column(tmp_path):
    p = tmp_path / "no_date.csv"
    p.write_text("CustomerID,InvoiceNo,Amount\nc1,1,3\nc1,2,4\n")
    with pytest.raises(InputError) as err:
        _ingest(p, kind="transactions")
    assert err.value.code == "input.missing_column" and err.value.settings == ("columns",)
    assert "ts" in str(err.value) and "--map" not in str(err.value)


def test_a_customer_table_without_an_id_is_input_missing_column(tmp_path):
    p = tmp_path / "people.csv"
    p.write_text("Age,Income\n30,100\n40,200\n")
    with pytest.raises(InputError) as err:
        _ingest(p, kind="customers")
    assert err.value.code == "input.missing_column"
    assert err.value.settings == ("columns.customer_id",)
    assert "columns.customer_id" in str(err.value)


def test_an_unknown_column_in_the_mapping_is_input_unknown_column(tmp_path):
    p = tmp_path / "o.csv"
    p.write_text("CustomerID,InvoiceDate,Amount\nc1,2024-01-01,3\n")
    with pytest.raises(InputError) as err:
        _ingest(p, columns={"customer_id": "Client"})
    assert err.value.code == "input.unknown_column"
    assert err.value.settings == ("columns.customer_id",)


def test_a_binary_file_is_input_unreadable(tmp_path):
    p = tmp_path / "garbage.csv"
    p.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(InputError) as err:
        _ingest(p)
    assert err.value.code == "input.unreadable" and http_status(err.value) == 400


def test_ambiguous_dates_are_input_ambiguous_dates(tmp_path):
    p = tmp_path / "us.csv"
    rows = "".join(f"c{i % 9},{i},{i % 3 + 1:02d}/{i % 12 + 1:02d}/2024,1,2\n" for i in range(60))
    p.write_text("CustomerID,InvoiceNo,InvoiceDate,Quantity,UnitPrice\n" + rows)
    with pytest.raises(AmbiguousDatesError) as err:
        _ingest(p)
    assert err.value.code == "input.ambiguous_dates" and err.value.settings == ("date_format",)
    assert "date_format" in str(err.value) and "--date-format" not in str(err.value)


def test_too_few_customers_is_input_too_few_customers():
    from segmint.cluster.base import require_customers

    with pytest.raises(InputError) as err:
        require_customers(3)
    assert err.value.code == "input.too_few_customers"


def test_an_unknown_run_reference_is_run_not_found(tmp_path):
    from segmint.store.workspace import Workspace

    with Workspace.open(tmp_path / "ws") as ws, pytest.raises(RunNotFoundError) as err:
        ws.registry.resolve("no-such-run")
    assert err.value.code == "run.not_found" and http_status(err.value) == 404


def test_a_tampered_or_unsigned_model_is_model_untrusted(tmp_path):
    from segmint import signing

    model = tmp_path / "model.skops"
    model.write_bytes(b"the bytes segmint wrote")
    signing.write_signature(model, b"the bytes segmint wrote")
    with pytest.raises(ArtifactError, match="signature does not match") as err:
        signing.verify(model, b"the bytes someone changed")
    assert err.value.code == "model.untrusted" and http_status(err.value) == 403
    signing.signature_path(model).unlink()
    with pytest.raises(ArtifactError, match="not signed") as err:
        signing.verify(model, b"the bytes segmint wrote")
    assert err.value.code == "model.untrusted"


def test_a_model_that_does_not_match_its_manifest_is_model_mismatch(tmp_path):
    from segmint.store.loading import load_run_model

    (tmp_path / "model.skops").write_bytes(b"a model from another run")
    manifest = {"config_hash": "abc", "artifacts": {"model.skops": {"sha256": "0" * 64}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match the run's manifest") as err:
        load_run_model(tmp_path)
    assert err.value.code == "model.mismatch" and http_status(err.value) == 409
    with pytest.raises(ArtifactError) as err:
        load_run_model(tmp_path / "nowhere")
    assert err.value.code == "artifact.missing" and http_status(err.value) == 404


def test_a_folder_another_process_writes_is_output_busy(tmp_path):
    from segmint.locks import FolderLock

    held = FolderLock.acquire(tmp_path / "run")
    try:
        with pytest.raises(OutputError) as err:
            FolderLock.acquire(tmp_path / "run")
    finally:
        held.release()
    assert err.value.code == "output.busy" and err.value.settings == ("out",)
    assert http_status(err.value) == 409


# ------------------------------------------------------------------ the command line


def test_cli_prints_the_code_and_the_option_and_exits_2(tmp_path):
    from segmint.cli import app

    p = tmp_path / "no_date.csv"
    p.write_text("CustomerID,InvoiceNo,Amount\nc1,1,3\nc1,2,4\n")
    r = CliRunner().invoke(
        app,
        ["run", str(p), "--kind", "transactions", "--out", str(tmp_path / "out")],
        env={"SEGMINT_WORKSPACE": str(tmp_path / "ws")},
    )
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "error [input.missing_column]: " in text, text  # after the progress lines
    assert text.endswith("(command-line option --map CANONICAL=COLUMN)"), text
    assert text.count("error [") == 1


def test_cli_shows_only_options_the_command_has(tmp_path):
    """``predict`` has no ``--date-format``: its error names the setting without a hint."""
    from segmint.cli.app import flag_hint

    exc = AmbiguousDatesError("m", settings=("date_format",))
    assert flag_hint(exc) == " (command-line option --date-format)"  # outside a command
    with typer.Context(typer.main.get_command(_app()).commands["predict"]):
        assert flag_hint(exc) == ""
    with typer.Context(typer.main.get_command(_app()).commands["run"]):
        assert flag_hint(exc) == " (command-line option --date-format)"


def _app() -> typer.Typer:
    from segmint.cli import app

    return app


def test_runs_commands_report_errors_like_every_command(tmp_path):
    from segmint.cli import app

    r = CliRunner().invoke(app, ["runs", "show", "nope", "--workspace", str(tmp_path / "ws")])
    assert r.exit_code == 2
    assert " ".join(r.output.split()).startswith("error [run.not_found]: No run matches 'nope'")


def test_every_flag_in_the_table_is_an_option_of_some_command():
    from segmint.cli.app import SETTING_FLAGS

    def options(command) -> set[str]:
        found = {o for p in command.params for o in p.opts}
        for sub in getattr(command, "commands", {}).values():
            found |= options(sub)
        return found

    have = options(typer.main.get_command(_app()))
    assert set(SETTING_FLAGS.values()) <= have, set(SETTING_FLAGS.values()) - have


# ------------------------------------------------------------------ no flags below the CLI


def _strings(node: ast.AST) -> list[tuple[int, str]]:
    return [
        (n.lineno, n.value)
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_no_library_error_message_names_a_command_line_flag():
    """In ``raise`` statements, and in the error objects helpers build and return, below
    ``cli/``: a message names the setting (``calibration_end``), the CLI adds the flag."""
    names = {c.__name__ for c in _segmint_classes()}
    offenders = []
    checked = 0
    for path in _library_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            is_error = isinstance(node, ast.Raise) or (
                isinstance(node, ast.Call) and getattr(node.func, "id", None) in names
            )
            if not is_error:
                continue
            checked += 1
            for line, text in _strings(node):
                if FLAG.search(text):
                    offenders.append(f"{path.relative_to(SRC)}:{line}: {text!r}")
    assert checked > 150
    assert not offenders, "\n".join(sorted(set(offenders)))


def test_the_flag_pattern_catches_flags_and_spares_prose():
    assert FLAG.search("use --date-format '%d/%m/%Y'") and FLAG.search("(--out)")
    assert not FLAG.search("2024-01-01 -- a dash") and not FLAG.search("a--b")
