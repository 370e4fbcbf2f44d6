"""A model file must never run code: crafted models are refused before anything in them is
built — with or without a valid signature — swapped models are refused by the signature,
the signing key is handled like an ssh key, and the allow-list is exactly what segmint
writes (every clustering method, the churn model, categorical features).

Each crafted payload tries a real side effect (a marker file); the first test shows the
payloads do run under the old prefix-based trust, so the refusals below are not vacuous.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import make_blobs
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

import segmint
from segmint import model_types, signing
from segmint.cli import app
from segmint.cluster import ALGORITHMS
from segmint.exceptions import ArtifactError
from segmint.model import SegmentationModel
from segmint.pipeline.scoring import predict

runner = CliRunner()
OLD_PREFIXES = ("sklearn.", "numpy.", "scipy.", "segmint.", "builtins.")
FAST = {"stability_runs": 0, "bootstrap": 10}  # speed only; the saved types are the same
OTHER_SECRET = "another-machine-" + "0123456789abcdef" * 2


def _table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Four blobs and two categorical columns (one follows the blob, one is noise)."""
    X, y = make_blobs(n, centers=4, n_features=3, cluster_std=0.5, random_state=1)
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "a": X[:, 0],
            "b": X[:, 1],
            "c": X[:, 2],
            "colour": np.array(["red", "green", "blue", "grey"])[y],
            "channel": rng.choice(["web", "store", "app"], n),
        }
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """A saved run folder (k-means, k = 4) and a customer table to predict."""
    d = tmp_path_factory.mktemp("secure")
    table = _table()
    table.to_csv(d / "customers.csv", index=False)
    return segmint.save(_fit(table, k=4), d / "run"), d / "customers.csv"


def _fit(*data: object, **clustering: object) -> segmint.RunResult:
    return segmint.segment(*data, clustering={**FAST, **clustering}, explain={"drivers": False})


def _copy(run_dir: Path, dest: Path) -> Path:
    return Path(shutil.copytree(run_dir, dest))


def _payload(model_file: Path) -> dict:
    """The dict inside a genuine model file (our own file: trusting its types is fine)."""
    return sio.load(model_file, trusted=sio.get_untrusted_types(file=model_file))


def _code_runner(marker: Path, kind: str) -> Pipeline:
    """Pipeline of FunctionTransformers that runs code on ``transform`` and then returns a
    harmless matrix. ``runstring``: exec a shell command; ``eval``: a Python expression."""
    if kind == "runstring":
        code = f"import os; os.system('touch {marker}')"
        run_it = FunctionTransformer(np.vectorize(np.testing.runstring), kw_args={"dict": {}})
    else:
        code = f"__import__('pathlib').Path(r'{marker}').write_text('pwned')"
        run_it = FunctionTransformer(np.vectorize(builtins.eval))
    return Pipeline(
        [
            (
                "code",
                FunctionTransformer(np.full_like, kw_args={"fill_value": code, "dtype": object}),
            ),
            ("run", run_it),
            (
                "zeros",
                FunctionTransformer(np.full_like, kw_args={"fill_value": 0.0, "dtype": float}),
            ),
        ]
    )


def _craft(run_dir: Path, dest: Path, signature: str, **replace: object) -> Path:
    """A copy of ``run_dir`` whose model has ``replace``d parts. ``signature``: "valid" (an
    attacker who holds the key re-signs it), "stale" (the original sidecar stays), "none"."""
    d = _copy(run_dir, dest)
    model = d / "model.skops"
    payload = {**_payload(model), **replace}
    data = sio.dumps(payload)
    model.write_bytes(data)
    manifest = json.loads((d / "manifest.json").read_text())
    if "model.skops" in manifest.get("artifacts", {}):  # the attacker edits that too
        entry = manifest["artifacts"]["model.skops"]
        entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        (d / "manifest.json").write_text(json.dumps(manifest))
    if signature == "valid":
        signing.write_signature(model, data)
    elif signature == "none":
        signing.signature_path(model).unlink()
    return d


@pytest.mark.parametrize("kind", ["runstring", "eval"])
def test_payloads_are_live_under_the_old_prefix_trust(run, tmp_path, kind):
    run_dir, _ = run
    marker = tmp_path / "marker"
    d = _craft(run_dir, tmp_path / "evil", "valid", preprocessor=_code_runner(marker, kind))
    untrusted = sio.get_untrusted_types(file=d / "model.skops")
    assert all(t.startswith(OLD_PREFIXES) for t in untrusted), untrusted  # old rule: trusted
    payload = sio.load(d / "model.skops", trusted=untrusted)
    assert not marker.exists()
    payload["preprocessor"].transform(pd.DataFrame({"a": [1.0, 2.0]}))
    assert marker.exists()  # the payload really runs code when it is not refused


@pytest.mark.parametrize("kind", ["runstring", "eval"])
@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("valid", "types segmint never writes"),
        ("stale", "signature does not match"),
        ("none", "not signed"),
    ],
)
def test_code_running_model_is_refused(run, tmp_path, kind, signature, message):
    run_dir, _ = run
    marker = tmp_path / "marker"
    d = _craft(run_dir, tmp_path / "evil", signature, preprocessor=_code_runner(marker, kind))
    with pytest.raises(ArtifactError, match=message) as err:
        segmint.load_model(str(d))
    assert "was not loaded" in str(err.value)
    assert err.value.code == "model.untrusted"
    if signature == "valid":  # the allow-list names what it refused
        expected = "runstring" if kind == "runstring" else "builtins.eval"
        assert expected in str(err.value) and "FunctionTransformer" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["runstring", "eval"])
@pytest.mark.parametrize("signature", ["valid", "stale"])
def test_cli_predict_refuses_code_running_model(run, tmp_path, kind, signature):
    run_dir, data = run
    marker = tmp_path / "marker"
    d = _craft(run_dir, tmp_path / "evil", signature, preprocessor=_code_runner(marker, kind))
    r = runner.invoke(
        app, ["predict", "--run", str(d), str(data), "--out", str(tmp_path / "s.csv")]
    )
    assert r.exit_code == 2, r.output
    assert "error [model.untrusted]:" in r.output and "was not loaded" in r.output
    assert "Traceback" not in r.output
    assert not marker.exists() and not (tmp_path / "s.csv").exists()


def test_cli_predict_in_a_fresh_process_refuses_a_resigned_payload(run, tmp_path):
    """The reported attack, end to end: the installed command, a re-signed payload."""
    run_dir, data = run
    marker = tmp_path / "marker"
    d = _craft(run_dir, tmp_path / "evil", "valid", preprocessor=_code_runner(marker, "runstring"))
    exe = Path(sys.executable).with_name("segmint")
    cmd = [str(exe), "predict", "--run", str(d), str(data), "--out", str(tmp_path / "s.csv")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "never writes" in p.stderr and "numpy.vectorize" in p.stderr
    assert not marker.exists()


def test_swapped_estimator_of_allowed_types_is_refused_by_the_signature(run, tmp_path):
    run_dir, _ = run
    other = _fit(_table(seed=1), k=2)
    swapped = other.model.estimator
    d = _craft(run_dir, tmp_path / "swap", "stale", estimator=swapped)
    data = (d / "model.skops").read_bytes()
    assert model_types.audit(data).unexpected == ()  # only allowed types: the list alone passes
    with pytest.raises(ArtifactError, match="changed after it was saved"):
        segmint.load_model(str(d))
    # a whole, validly signed model from another run is caught by the manifest's config hash
    d2 = _copy(run_dir, tmp_path / "mixed")
    other_dir = segmint.save(other, tmp_path / "other")
    for name in ("model.skops", "model.skops.sig"):
        shutil.copy(other_dir / name, d2 / name)
    with pytest.raises(ArtifactError, match="mixes files from two runs"):
        segmint.load_model(str(d2))


def test_default_trusted_callables_do_not_slip_through(tmp_path):
    """skops trusts FunctionTransformer and numpy ufuncs by default, so its own untrusted
    list is empty for this file; segmint's audit lists every type the file names."""
    data = sio.dumps({"preprocessor": FunctionTransformer(np.add, kw_args={"x2": 1})})
    assert sio.get_untrusted_types(data=data) == []
    bad = model_types.audit(data).unexpected
    assert "numpy.add (as FunctionNode)" in bad
    assert any(b.endswith("FunctionTransformer") for b in bad)


def test_allow_list_holds_classes_only():
    for name in model_types.ALLOWED_TYPES:
        module, _, attr = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attr)
        assert isinstance(obj, type), name
    assert not {"FunctionNode", "MethodNode", "PartialNode", "OperatorFuncNode"} & (
        model_types.ALLOWED_NODES
    )


def test_saved_types_are_exactly_allowed(tmp_path):
    """Every clustering method on a customer table with categories, and order lines with
    attributes (churn model, one-hot): what ``save`` writes stays inside the allow-list,
    and together they use all of it (so no stale entry lingers)."""
    from segmint.data.synth import generate_orders

    table = _table()
    used: set[str] = set()
    nodes: set[str] = set()
    for name in ALGORITHMS:
        r = _fit(table, algorithm=name, k=4, n_init=1)  # a fixed k: no sweep, same types
        r.model.save(tmp_path / f"{name}.skops")
        found = model_types.declared_nodes((tmp_path / f"{name}.skops").read_bytes())
        assert {t for t, _ in found} <= model_types.ALLOWED_TYPES, name
        used |= {t for t, _ in found}
        nodes |= {n for _, n in found}
    info = generate_orders(1500, tmp_path / "orders.parquet", seed=3)
    types = pd.read_parquet(info["types_path"])
    rng = np.random.default_rng(0)
    attrs = pd.DataFrame(
        {
            "customer_id": types["customer_id"],
            "age": rng.integers(18, 80, len(types)),
            "region": rng.choice(["north", "south", "east"], len(types)),
        }
    )
    attrs.to_csv(tmp_path / "attrs.csv", index=False)
    r = _fit(info["path"], tmp_path / "attrs.csv", k=4)
    assert r.model.churn is not None and "region" in r.model.categorical
    r.model.save(tmp_path / "orders.skops")
    found = model_types.declared_nodes((tmp_path / "orders.skops").read_bytes())
    assert {t for t, _ in found} <= model_types.ALLOWED_TYPES
    used |= {t for t, _ in found}
    nodes |= {n for _, n in found}
    assert used == model_types.ALLOWED_TYPES
    assert nodes == model_types.ALLOWED_NODES


def test_save_refuses_a_type_outside_the_list(run, tmp_path):
    model = segmint.load_model(str(run[0]))
    bad = SegmentationModel(FunctionTransformer(np.exp), model.estimator, model.meta)
    with pytest.raises(RuntimeError, match=r"segmint bug.*FunctionTransformer"):
        bad.save(tmp_path / "model.skops")
    assert not (tmp_path / "model.skops").exists()
    assert not (tmp_path / "model.skops.sig").exists()


def test_unsigned_model_is_refused(run, tmp_path):
    d = _copy(run[0], tmp_path / "run")
    (d / "model.skops.sig").unlink()
    with pytest.raises(ArtifactError, match=r"not signed.*segmint trust"):
        segmint.load_model(str(d))


def test_model_from_another_key_is_refused_with_both_key_ids(run, tmp_path, monkeypatch):
    d = _copy(run[0], tmp_path / "run")
    mine = signing.load_key().key_id
    theirs = signing.SigningKey(OTHER_SECRET.encode(), "test").key_id
    monkeypatch.setenv(signing.KEY_ENV, OTHER_SECRET)
    assert signing.load_key().key_id == theirs != mine
    with pytest.raises(ArtifactError, match="different key") as err:
        segmint.load_model(str(d))
    assert mine in str(err.value) and theirs in str(err.value)
    assert "SEGMINT_SIGNING_KEY" in str(err.value) and "segmint trust" in str(err.value)


def test_short_env_key_is_refused(monkeypatch):
    monkeypatch.setenv(signing.KEY_ENV, "x" * 31)
    with pytest.raises(ArtifactError, match="at least 32"):
        signing.load_key()


def test_sharing_the_key_file_text_gives_the_same_key(run, tmp_path, monkeypatch):
    """SEGMINT_SIGNING_KEY=$(cat signing.key) on another machine: same key, model loads."""
    text = Path(os.environ[signing.KEY_FILE_ENV]).read_text()
    mine = signing.load_key().key_id
    monkeypatch.setenv(signing.KEY_FILE_ENV, str(tmp_path / "elsewhere" / "signing.key"))
    monkeypatch.setenv(signing.KEY_ENV, text)
    assert signing.load_key().key_id == mine
    assert segmint.load_model(str(run[0])).segment_names


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_key_file_is_created_private_and_loose_permissions_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "segmint" / "signing.key"
    monkeypatch.setenv(signing.KEY_FILE_ENV, str(path))
    key = signing.load_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_text().strip()) == 64 and int(path.read_text(), 16) >= 0
    assert signing.load_key() == key  # read again, not re-created
    for mode in (0o644, 0o640, 0o604, 0o620, 0o602):
        path.chmod(mode)
        with pytest.raises(ArtifactError, match=f"chmod 600 {path}"):
            signing.load_key()
    path.chmod(0o600)
    assert signing.load_key() == key


def test_xdg_config_home_is_the_default_place(tmp_path, monkeypatch):
    monkeypatch.delenv(signing.KEY_FILE_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert signing.default_key_file() == tmp_path / "xdg" / "segmint" / "signing.key"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert signing.default_key_file() == Path.home() / ".config" / "segmint" / "signing.key"


def test_concurrent_first_use_makes_one_key(tmp_path):
    """Processes that all find no key file at once end up with the same key."""
    path = tmp_path / "race" / "signing.key"
    start = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, time
        from segmint import signing
        while not os.path.exists({str(start)!r}):
            time.sleep(0.001)
        print(signing.load_key().key_id)
        """
    )
    env = {**os.environ, signing.KEY_FILE_ENV: str(path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    start.touch()
    ids = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    expected = signing.SigningKey(path.read_text().strip().encode(), "file").key_id
    assert ids == {expected}


def test_losing_the_creation_race_uses_the_winners_key(tmp_path, monkeypatch):
    """Deterministic version of the race: another process creates the key file between
    this one's "no key file" and its create. This one must use the winner's key, not
    overwrite it (which would orphan every model the winner signs)."""
    path = tmp_path / "race" / "signing.key"
    monkeypatch.setenv(signing.KEY_FILE_ENV, str(path))
    real_open = os.open
    winner: list[signing.SigningKey] = []

    def racing_open(file, flags, *args):
        if Path(file) == path and not winner:
            winner.append(signing.SigningKey(b"", "pending"))
            winner[0] = signing.load_key()  # the other process, first to create the file
        return real_open(file, flags, *args)

    monkeypatch.setattr(os, "open", racing_open)
    mine = signing.load_key()
    assert winner[0].secret and mine == winner[0]
    assert path.read_text().strip().encode() == mine.secret


def test_a_key_file_still_being_written_is_waited_for(tmp_path, monkeypatch):
    import threading

    path = tmp_path / "signing.key"
    monkeypatch.setenv(signing.KEY_FILE_ENV, str(path))
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # created, empty
    secret = "f" * 64
    threading.Timer(0.2, lambda: path.write_text(secret + "\n")).start()
    assert signing.load_key().secret == secret.encode()


def test_trust_round_trip(run, tmp_path, monkeypatch):
    """A run saved on another machine: refused, then 'segmint trust' checks and re-signs
    it, and it predicts as before."""
    run_dir, _ = run
    d = _copy(run_dir, tmp_path / "copied")
    data = (d / "model.skops").read_bytes()
    signing.write_signature(d / "model.skops", data, signing.SigningKey(OTHER_SECRET.encode(), "x"))
    with pytest.raises(ArtifactError, match="different key"):
        segmint.load_model(str(d))
    r = runner.invoke(app, ["trust", str(d)])
    assert r.exit_code == 0, r.output
    assert signing.load_key().key_id in r.output
    assert "segmint.cluster.base.Assigner" in r.output and "signed by another key" in r.output
    assert (d / "model.skops").read_bytes() == data  # only the signature changed
    before = predict(segmint.load_model(str(run_dir)), str(run[1]))
    after = predict(segmint.load_model(str(d)), str(run[1]))
    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize("kind", ["runstring", "eval"])
def test_trust_refuses_a_code_running_model_without_loading_it(run, tmp_path, kind):
    marker = tmp_path / "marker"
    d = _craft(run[0], tmp_path / "evil", "none", preprocessor=_code_runner(marker, kind))
    r = runner.invoke(app, ["trust", str(d)])
    assert r.exit_code == 2, r.output
    assert "never writes" in r.output and "was not loaded" in r.output
    assert not (d / "model.skops.sig").exists()  # not signed
    assert not marker.exists()


def test_trust_needs_a_run_folder(tmp_path):
    r = runner.invoke(app, ["trust", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "not a folder" in r.output
    r = runner.invoke(app, ["trust", str(tmp_path)])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_signature_file_damage_is_explained(run, tmp_path):
    d = _copy(run[0], tmp_path / "run")
    sig = d / "model.skops.sig"
    sig.write_text("{not json")
    with pytest.raises(ArtifactError, match="signature file is unreadable"):
        segmint.load_model(str(d))
    sig.write_text(json.dumps({"algorithm": "HMAC-SHA256"}))
    with pytest.raises(ArtifactError, match="lacks algorithm, key_id, mac"):
        segmint.load_model(str(d))
