"""Property-based tests of the REST API against its own OpenAPI schema (schemathesis).

Every operation in ``/openapi.json`` is exercised, so routes added later (scoring, jobs) are
picked up without touching this file. For each generated request (schema-valid and
schema-invalid ones, plus schemathesis's boundary "coverage" cases and undeclared methods):

- **authorised** (with the key): never a 5xx; the status is documented, the content type
  is the documented one, the body matches the documented schema (every error in the one
  error shape), an unsupported method is 405 with an ``Allow`` that lists exactly the path's
  methods, schema-invalid input is refused with a 4xx, and a 2xx still needs the key (the
  request is replayed without it and with a wrong one: 401). Every answer carries the
  security headers.
- **unauthorised** (no key, a wrong key in either header): 401 with ``WWW-Authenticate`` and
  the error shape on every operation but ``GET /v1/health``, whatever else the request holds.

Unsupported methods are left out of the unauthorised check: routing answers them 405 before
any route (and so any key check) is chosen.

Generated parameters hit real data three times in four: ``ref`` is the run's id, an id
prefix, its tag, its name or ``latest`` (else generated text); ``customer_id`` a real customer
(else text); ``segment`` a real number or name (else text). Only values that are valid for
the parameter are swapped, so a schema-invalid request stays invalid. Generated score bodies
seldom hold the features a run needs, so ``POST /v1/runs/{ref}/score`` is also called with
the run's own customers (features or order lines, some with a value dropped or made odd),
every answer checked against the schema. The last test fails if some operation never got a
200, so a hook that stops working cannot leave the deep code untested (``SCHEMA_STATS=1``
with ``-s`` prints every (method, path, status) seen).

Two operations are not in the generic loop because they change the workspace:

- ``DELETE /v1/runs/{ref}`` runs on a workspace of its own, refilled with a fresh copy of a
  run whenever fewer than two are left, so deletes keep finding something to delete.
- ``POST /v1/runs`` runs on an empty workspace whose launcher starts ``true(1)`` instead of
  the segmentation worker (the route, its validation, the upload, the slot and the registry
  row are the real ones; only the worker program is not), with ``max_jobs=1``. So every
  generated body, valid or not, is checked against the schema (invalid ones must be a 4xx,
  valid ones a 202) without ever starting a segmentation; the test fails if a run was
  started by any other launcher. A valid JSON body's paths are pointed at a file that is in
  the data directory. Every app here has that launcher, so even a broken key check could not
  start a segmentation.

Generation is derandomized (the same cases on every run) and bounded: ``EXAMPLES`` fuzzed
cases per operation plus schemathesis's deterministic coverage cases.

Why the schema is loaded at import, from an app over an empty workspace, and not with
``schemathesis.pytest.from_fixture``: schemathesis 4.32's lazy loader sets
``request.node._nodeid``, which pytest 9.2 nodes no longer have. The document does not depend
on what the workspace holds, and every request is sent to the fixture's app (``app=``).
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import segmint
from segmint.api import create_app
from segmint.api.config import ServerSettings
from segmint.config import Settings
from segmint.pipeline.launch import Launcher
from segmint.store import runview
from segmint.store.workspace import Workspace
from tests.api_support import AUTH, FAST, KEY, make_served

EXAMPLES = 30  # fuzzed cases per operation (plus the coverage phase's boundary cases)
PUBLIC = {("GET", "/v1/health")}
DELETE_RUN = ("DELETE", "/v1/runs/{ref}")
START_RUN = ("POST", "/v1/runs")
WRONG_KEYS = (
    {},
    {"X-API-Key": "wrong-key-0123456789abcdef"},
    {"Authorization": "Bearer wrong-key-0123456789abcdef"},
    {"Authorization": f"Basic {KEY}"},
    {"X-API-Key": ""},
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
DERANDOMIZED = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


# -- the schema ----------------------------------------------------------------------------


def _schema_app() -> FastAPI:
    """An app over an empty, throwaway workspace: only its OpenAPI document is used."""
    root = tempfile.mkdtemp(prefix="segmint-openapi-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return create_app(root, settings=ServerSettings(api_keys=(KEY,)))


schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_app())
# the key is sent by the tests themselves (valid, missing or wrong), never generated
schema.config.generation.update(with_security_parameters=False)


@dataclass
class Known:
    """Real values the generated requests should often use (set by the fixture in use)."""

    refs: Callable[[], list[str]] = list
    customers: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)


KNOWN = Known()


def _often(value: Any, real: list[str]) -> st.SearchStrategy[Any]:
    """One of ``real`` three times in four, else ``value``."""
    if not real:
        return st.just(value)
    return st.integers(0, 3).flatmap(lambda i: st.sampled_from(real) if i else st.just(value))


def _valid_text(value: Any, max_length: int) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= max_length


@schema.hook
def flatmap_path_parameters(_: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy:
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    params = dict(path_parameters)
    parts: dict[str, st.SearchStrategy[Any]] = {k: st.just(v) for k, v in params.items()}
    if _valid_text(params.get("ref"), 200):
        parts["ref"] = _often(params["ref"], KNOWN.refs())
    if isinstance(params.get("customer_id"), str):
        parts["customer_id"] = _often(params["customer_id"], KNOWN.customers)
    return st.fixed_dictionaries(parts)


@schema.hook
def flatmap_query(_: Any, query: dict[str, Any] | None) -> st.SearchStrategy:
    if not isinstance(query, dict) or not _valid_text(query.get("segment"), 200):
        return st.just(query)
    return _often(query["segment"], KNOWN.segments).map(lambda s: {**query, "segment": s})


def _paths_in_data_dir(case: Case, files: list[str]) -> None:
    """A ``POST /v1/runs`` JSON body's paths, when valid, name a file that is in the data
    directory, so that a valid body starts a run (a missing file is a 400 the schema cannot
    express). Done on the case, not in a hook, so the coverage phase's cases (built before
    any fixture) are pointed there too; schemathesis re-checks an edited case's validity."""
    body = case.body
    paths = body.get("paths") if isinstance(body, dict) else None
    if isinstance(paths, list) and paths and all(_valid_text(p, 4096) for p in paths):
        case.body = {**body, "paths": [files[sum(map(len, paths)) % len(files)]]}


# (method, path template, status) of every authorised call: the last test checks that real
# data was reached, so a hook that stops working cannot leave the deep code untested
SEEN: Counter[tuple[str, str, int]] = Counter()


@schema.hook
def after_call(context: Any, case: Case, response: Response) -> None:
    request = response.request.headers
    if request.get("X-API-Key") == KEY or request.get("Authorization") == f"Bearer {KEY}":
        SEEN[(case.method.upper(), case.operation.path, response.status_code)] += 1


def security_headers(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every answer, errors included, says nosniff, no framing, no-store."""
    for name, want in SECURITY_HEADERS.items():
        got = response.headers.get(name)
        assert got == [want], f"{name}: {got!r}, expected {want!r}"  # values are lists
    return None


# -- fixtures ------------------------------------------------------------------------------


class NoWorkerLauncher(Launcher):
    """The real launcher with ``true(1)`` as the worker program: a run is reserved, started
    (a process that exits at once) and registered as the API does it, and then fails as a
    worker that died before adopting its run."""

    def __init__(self, workspace: Workspace) -> None:
        true = shutil.which("true")
        assert true, "the true(1) program is needed"
        super().__init__(workspace, max_jobs=1, cancel_grace=1.0, python=true)
        self.started: list[str] = []

    def start(self, reservation: Any, *args: Any, **kwargs: Any) -> Any:
        record = super().start(reservation, *args, **kwargs)
        self.started.append(record.id)
        return record


def _app(root: Path, **server: Any) -> FastAPI:
    app = create_app(root, settings=ServerSettings(api_keys=(KEY,), max_jobs=1, **server))
    app.state.launcher = NoWorkerLauncher(app.state.workspace)
    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return make_served(tmp_path_factory.mktemp("schema"), customers=300)


@pytest.fixture(scope="module")
def app(served) -> Iterator[FastAPI]:
    app = _app(served.root)
    yield app
    app.state.launcher.wait(10)


@pytest.fixture
def real_data(served) -> Iterator[None]:
    """Generated requests use the served run's refs, customers and segments."""
    ids = pd.read_parquet(served.folder / "customers.parquet", columns=["customer_id"])
    ids = ids["customer_id"].astype(str)
    segments = pd.read_parquet(served.folder / "tables" / "segments.parquet")
    run = served.run_id
    KNOWN.refs = lambda: [run, run[:6], run[:-1], "prod", "first", "latest", run.upper()]
    KNOWN.customers = [*ids.iloc[:: max(1, len(ids) // 20)], f"{ids.iloc[0]}/x", " "]
    KNOWN.segments = [
        *segments["segment"].astype(str),
        *segments["segment_name"].astype(str),
        "-1",
        " 0 ",
        "99",
    ]
    yield
    KNOWN.__init__()


# -- authorised calls ----------------------------------------------------------------------

# every operation but the two that change the workspace (tested below on workspaces of their own)
READ_AND_SCORE = schema.exclude(method=DELETE_RUN[0], path=DELETE_RUN[1]).exclude(
    method=START_RUN[0], path=START_RUN[1]
)


@READ_AND_SCORE.parametrize()
@DERANDOMIZED
def test_authorised_calls_conform_to_the_schema(case, app, real_data):
    # a schema-valid score body lacking the run's features is rightly 400: no static schema
    # can say which features a run needs (its real customers are scored in a test below)
    scoring = case.operation.method.upper() == "POST" and case.operation.path.endswith("/score")
    response = case.call_and_validate(
        headers=AUTH,
        app=app,
        additional_checks=[security_headers],
        excluded_checks=[positive_data_acceptance] if scoring else None,
    )
    assert response.status_code != 401, response.text


@schema.include(method=DELETE_RUN[0], path=DELETE_RUN[1]).parametrize()
@DERANDOMIZED
def test_deleting_runs_conforms_to_the_schema(case, deletable):
    response = case.call_and_validate(
        headers=AUTH, app=deletable.app, additional_checks=[security_headers]
    )
    assert response.status_code != 401, response.text
    deletable.refill()


@schema.include(method=START_RUN[0], path=START_RUN[1]).parametrize()
@DERANDOMIZED
def test_starting_runs_conforms_to_the_schema_and_starts_no_segmentation(case, startable):
    _paths_in_data_dir(case, startable.files)
    # settings have checks the schema cannot state (an ISO date's calendar, a date format's
    # directives): those answer 422 naming the field, so valid-by-schema may be refused here
    response = case.call_and_validate(
        headers=AUTH,
        app=startable.app,
        additional_checks=[security_headers],
        excluded_checks=[positive_data_acceptance],
    )
    assert response.status_code != 401, response.text
    launcher: NoWorkerLauncher = startable.app.state.launcher
    if response.status_code == 202:
        assert response.json()["id"] in launcher.started
    rows = startable.app.state.workspace.registry.list(limit=1000)
    assert {r.id for r in rows} <= set(launcher.started), "a run was started by another launcher"


@dataclass
class Deletable:
    app: FastAPI
    result: Any
    ws: Workspace
    made: int = 0

    def refill(self) -> None:
        while self.ws.registry.count() < 2:
            self.made += 1
            segmint.save(
                self.result, workspace=self.ws.root, name=f"copy{self.made}", tags=["prod"]
            )


@pytest.fixture(scope="module")
def _deletable(tmp_path_factory) -> Iterator[Deletable]:
    root = tmp_path_factory.mktemp("delete")
    from segmint.data.synth import generate_orders

    generate_orders(120, root / "orders.parquet", seed=5)
    result = segmint.segment(
        str(root / "orders.parquet"), settings=Settings.build({**FAST, "seed": 5})
    )
    app = _app(root / "ws")
    deletable = Deletable(app, result, app.state.workspace)
    deletable.refill()
    yield deletable


@pytest.fixture
def deletable(_deletable) -> Iterator[Deletable]:
    def refs() -> list[str]:
        rows = _deletable.ws.registry.list(limit=10)
        ids = [r.id for r in rows]
        return [*ids, *(i[:5] for i in ids), "prod", "latest", *(r.name for r in rows if r.name)]

    KNOWN.refs = refs
    yield _deletable
    KNOWN.__init__()


@dataclass(frozen=True)
class Startable:
    app: FastAPI
    files: list[str]  # the data directory's one file, as a run's paths may name it


@pytest.fixture(scope="module")
def startable(tmp_path_factory) -> Iterator[Startable]:
    root = tmp_path_factory.mktemp("start")
    data = root / "data"
    data.mkdir()
    from segmint.data.synth import generate_orders

    generate_orders(50, data / "orders.parquet", seed=7)
    app = _app(root / "ws", data_dir=data)
    yield Startable(app, ["orders.parquet", "./orders.parquet", str(data / "orders.parquet")])
    app.state.launcher.wait(10)


# -- scoring real customers ----------------------------------------------------------------

SCORE = ("POST", "/v1/runs/{ref}/score")
# what the response must be, whatever the body: the schema's own checks (a 400 for a record
# lacking a feature is right, though the schema cannot say which features a run needs, so
# positive_data_acceptance is not among them)
RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    security_headers,
]
ODD_VALUES = st.sampled_from([None, "", "abc", "１２", -1, 0, 10**15, -1e300, 1e300, True, [], {}])


@st.composite
def _perturbed(draw: st.DrawFn, record: dict[str, Any], keep: tuple[str, ...]) -> dict:
    """``record`` with a few of its values dropped or replaced by odd ones (often none)."""
    out = dict(record)
    names = sorted(k for k in out if k not in keep)
    for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)) if names else []:
        if draw(st.booleans()):
            del out[name]
        else:
            out[name] = draw(ODD_VALUES)
    return out


@st.composite
def score_bodies(draw: st.DrawFn, real: RealScoring) -> dict[str, Any]:
    """A body of real customers' features or order lines, sometimes perturbed."""
    if draw(st.booleans()):
        records = draw(st.lists(st.sampled_from(real.records), min_size=1, max_size=4))
        body: dict[str, Any] = {
            "customers": [draw(_perturbed(r, ("customer_id",))) for r in records]
        }
        if draw(st.booleans()):
            body["input"] = draw(st.sampled_from(["auto", "features", "attributes"]))
        return body
    who = draw(st.lists(st.sampled_from(sorted(real.lines)), min_size=1, max_size=3, unique=True))
    lines = [line for c in who for line in real.lines[c]]
    index = draw(st.integers(0, len(lines) - 1))
    lines[index] = draw(_perturbed(lines[index], ()))
    body = {"orders": lines}
    if draw(st.booleans()):
        body["observation_end"] = draw(
            st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1))
        ).isoformat()
    return body


@dataclass(frozen=True)
class RealScoring:
    records: list[dict[str, Any]]  # customer_id and features, as the run stored them
    lines: dict[str, list[dict[str, Any]]]  # order lines by customer


@pytest.fixture(scope="module")
def real_scoring(served) -> RealScoring:
    customers = pd.read_parquet(served.folder / "customers.parquet").head(40)
    records = [
        {"customer_id": row["customer_id"], **row["features"]}
        for row in map(runview.split_scores, json.loads(customers.to_json(orient="records")))
    ]
    orders = pd.read_parquet(served.orders)
    orders = orders[orders["customer_id"].isin(orders["customer_id"].unique()[:20])]
    orders["ts"] = orders["ts"].map(lambda t: t.isoformat())
    lines = {str(c): group.to_dict("records") for c, group in orders.groupby("customer_id")}
    return RealScoring(records, lines)


@pytest.mark.skipif(
    SCORE[1] not in schema or SCORE[0] not in schema[SCORE[1]],
    reason="no scoring route (yet)",
)
@DERANDOMIZED
@given(data=st.data())
def test_scoring_real_customers_conforms_to_the_schema(data, app, real_data, real_scoring):
    """Generated bodies rarely hold the features a run needs (so they stop at a 400); these
    score the run's own customers, from their features or their order lines, some with a
    value dropped or made odd, and every answer must be one the schema documents."""
    ref = data.draw(st.sampled_from(KNOWN.refs()), label="ref")
    body = data.draw(score_bodies(real_scoring), label="body")
    case = schema[SCORE[1]][SCORE[0]].Case(
        path_parameters={"ref": ref}, body=body, media_type="application/json"
    )
    response = case.call(headers=AUTH, app=app)
    case.validate_response(response, checks=RESPONSE_CHECKS)


# -- unauthorised calls --------------------------------------------------------------------


@schema.parametrize()
@DERANDOMIZED
def test_unauthorised_calls_are_401_everywhere_but_health(case, app, real_data):
    if case.method.upper() != case.operation.method.upper():
        return  # an undocumented method: 405 from routing, which runs before any key check
    public = (case.operation.method.upper(), case.operation.path) in PUBLIC
    for headers in WRONG_KEYS:
        response = case.call(headers=headers, app=app)
        if public:
            assert response.status_code < 500, response.text
            continue
        assert response.status_code == 401, (headers, response.status_code, response.text)
        assert response.headers["www-authenticate"][0].startswith("Bearer")
        error = response.json()["error"]
        assert error["code"] in ("auth.required", "auth.invalid"), error
        case.validate_response(response, additional_checks=[security_headers])


def test_the_docs_the_schema_and_health_need_no_key(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for path in ("/docs", "/openapi.json", "/v1/health"):
            r = client.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["x-content-type-options"] == "nosniff"


def test_every_operation_is_generated():
    """A route that slipped out of the schema (include_in_schema=False, a typo in a router's
    prefix) would silently escape these tests."""
    ops = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert {("GET", "/v1/runs"), ("GET", "/v1/runs/{ref}/customers/{customer_id}")} <= ops
    assert DELETE_RUN in ops and START_RUN in ops


# -- regressions: defects these tests found -----------------------------------------------


def test_a_405_allows_every_method_of_its_path(app):
    """Starlette's 405 named only the first route's methods (``Allow: GET`` on /v1/runs,
    which also takes POST): FastAPI makes one route per method."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        for method, path, want in (
            ("PUT", "/v1/runs", {"GET", "POST"}),
            ("PATCH", "/v1/runs/latest", {"GET", "DELETE"}),
            ("GET", "/v1/runs/latest/cancel", {"POST"}),
        ):
            r = client.request(method, path, headers=AUTH)
            assert r.status_code == 405, (method, path, r.text)
            allowed = {m.strip() for m in r.headers["allow"].split(",")}
            assert allowed - {"HEAD"} == want, (method, path, allowed)
            assert r.json()["error"]["code"] == "method.not_allowed"


def test_a_runs_manifest_matches_its_documented_schema(app, served):
    """``observation_end`` is a time without an offset (the data's clock), but the schema
    said RFC 3339 ``date-time``, so every finished run's ``GET /v1/runs/{ref}`` failed its
    own schema."""
    case = schema["/v1/runs/{ref}"]["GET"].Case(path_parameters={"ref": served.run_id})
    response = case.call_and_validate(headers=AUTH, app=app)
    assert response.status_code == 200
    assert response.json()["manifest"]["observation_end"] == "2025-12-31T00:00:00"


# -- the generation itself -----------------------------------------------------------------


def test_generated_requests_reached_real_data():
    """Run last: the authorised calls above found the run, its customers and its segments
    (a hook that stopped working would leave only 404s, and the deep code untested)."""
    if not SEEN:
        pytest.skip("run with the schema tests above")
    ok = {(method, path) for method, path, status in SEEN if status == 200}
    wanted = {
        ("GET", "/v1/runs/{ref}"),
        ("GET", "/v1/runs/{ref}/segments"),
        ("GET", "/v1/runs/{ref}/customers"),
        ("GET", "/v1/runs/{ref}/customers/{customer_id}"),
        ("GET", "/v1/runs/{ref}/export"),
        ("GET", "/v1/runs/{ref}/report"),
        ("DELETE", "/v1/runs/{ref}"),
        SCORE,
    }
    ran = {(method, path) for method, path, _ in SEEN}
    assert wanted & ran <= ok, sorted((wanted & ran) - ok)
    if os.environ.get("SCHEMA_STATS"):
        for key, count in sorted(SEEN.items()):
            print(*key, count)
