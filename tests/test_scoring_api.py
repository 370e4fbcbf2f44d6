"""Real-time scoring (``pipeline.scoring.score_customers`` / ``score_orders`` and
``POST /v1/runs/{RUN}/score``) gives what ``predict_detailed`` gives on the same data, on
every customer of real runs: from order lines (cleaned and featurised without the engine),
from feature values (the compiled model), and from a customer table's attributes."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

import segmint
from segmint.config import Settings
from segmint.exceptions import InputError
from segmint.pipeline import scoring
from segmint.pipeline.scoring_fast import FastModel, fast_model
from segmint.pipeline.scoring_lines import trim
from segmint.store.loading import load_run_model

from .api_support import AUTH, FAST, client, make_served
from .conftest import dataset


def _plain(v):
    """A pandas/numpy value as JSON would carry it."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v.item() if hasattr(v, "item") else v


def records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]


def expected(pred: scoring.Prediction) -> pd.DataFrame:
    return scoring.select_scores(pred.scores).reset_index(drop=True)


def got(scored: scoring.Scored) -> pd.DataFrame:
    return scored.scores[scored.columns].reset_index(drop=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return make_served(tmp_path_factory.mktemp("scoring"), customers=300, seed=5)


@pytest.fixture(scope="module")
def model(served):
    return load_run_model(served.folder)


@pytest.fixture(scope="module")
def gmm(served, tmp_path_factory):
    """A run whose method gives probabilities (prob_*, low_confidence)."""
    settings = Settings.build({**FAST, "clustering": {**FAST["clustering"], "algorithm": "gmm"}})
    result = segmint.segment(str(served.orders), settings=settings)
    folder = segmint.save(result, tmp_path_factory.mktemp("gmm") / "run")
    return load_run_model(folder)


@pytest.fixture(scope="module")
def mall(tmp_path_factory):
    path = dataset("mall_customers.csv")
    result = segmint.segment(str(path), settings=Settings.build({**FAST, "seed": 1}))
    folder = segmint.save(result, tmp_path_factory.mktemp("mall") / "run")
    return path, load_run_model(folder)


# -- every customer of real runs ------------------------------------------------------------
@pytest.mark.parametrize("which", ["model", "gmm"])
def test_orders_equal_predict_on_every_customer(served, which, request):
    m = request.getfixturevalue(which)
    ref = scoring.predict_detailed(m, str(served.orders))
    lines = pd.read_parquet(served.orders)
    scored = scoring.score_orders(m, records(lines))
    assert len(got(scored)) == len(expected(ref)) == 300
    pd.testing.assert_frame_equal(got(scored), expected(ref), check_exact=True)
    assert scored.rows == ref.rows
    q = ref.quarantine
    np.testing.assert_array_equal(scored.rejected_rows, q["_row"].to_numpy() - 1)
    np.testing.assert_array_equal(scored.rejected_reasons, q["reason"].astype(str).to_numpy())
    if which == "gmm":
        assert {"prob_0", "low_confidence"} <= set(scored.columns)
    else:
        assert "churn_probability" in scored.columns


@pytest.mark.parametrize("which", ["model", "gmm"])
def test_features_equal_predict_on_every_customer(served, which, request):
    m = request.getfixturevalue(which)
    ref = scoring.predict_detailed(m, str(served.orders))
    numeric, categorical = scoring.feature_columns(m)
    customers = pd.read_parquet(served.folder / "customers.parquet")
    recs = records(customers[["customer_id", *numeric, *categorical]])
    assert any(r["regularity"] is None for r in recs)  # missing values are imputed
    scored = scoring.score_customers(m, recs)
    pd.testing.assert_frame_equal(got(scored), expected(ref), check_exact=True)
    assert scored.rows == {"read": 300, "kept": 300, "quarantined": {}}


def test_features_equal_predict_one_customer_at_a_time(served, model):
    ref = expected(scoring.predict_detailed(model, str(served.orders))).set_index("customer_id")
    numeric, _ = scoring.feature_columns(model)
    customers = pd.read_parquet(served.folder / "customers.parquet")
    for rec in records(customers[["customer_id", *numeric]].head(25)):
        one = scoring.score_customers(model, [rec]).records()[0]
        want = ref.loc[rec["customer_id"]]
        assert (one["segment"], one["segment_name"]) == (want["segment"], want["segment_name"])
        assert one["confidence"] == pytest.approx(want["confidence"], abs=1e-6)
        assert one["churn_probability"] == pytest.approx(want["churn_probability"], abs=1e-12)


def test_customer_table_attributes_and_features_equal_predict(mall):
    path, m = mall
    ref = scoring.predict_detailed(m, str(path))
    table = pd.read_csv(path, dtype={"CustomerID": str})
    table = table.rename(columns={"CustomerID": "customer_id"})
    scored = scoring.score_customers(m, records(table))  # auto: attributes
    pd.testing.assert_frame_equal(got(scored), expected(ref), check_exact=True)
    numeric, categorical = scoring.feature_columns(m)
    assert set(numeric + categorical) <= set(table.columns)
    feats = scoring.score_customers(m, records(table), records_as="features")
    pd.testing.assert_frame_equal(got(feats), expected(ref), check_exact=True)


def test_one_customer_of_a_table_needs_its_features(mall):
    path, m = mall
    table = pd.read_csv(path, dtype={"CustomerID": str}).rename(
        columns={"CustomerID": "customer_id"}
    )
    with pytest.raises(InputError, match="typed from the values given") as err:
        scoring.score_customers(m, records(table.head(1)))
    assert err.value.code == "input.missing_column"
    one = scoring.score_customers(m, records(table.head(1)), records_as="features")
    assert len(one.records()) == 1


# -- the cleaning rules, rule for rule --------------------------------------------------------
def awkward_lines() -> list[dict]:
    base = {"quantity": 1, "unit_price": 10.0, "product_id": "A", "category": "x"}

    def line(cid, oid, ts, **kw):
        return {**base, "customer_id": cid, "order_id": oid, "ts": ts, **kw}

    return [
        line("1", "o1", "2024-01-02T10:00:00"),
        line("1", "o1", "2024-01-02T10:00:00"),  # exact duplicate
        line("1", "o1", "2024-01-02T10:00:00", product_id="B"),  # same order, other product
        line("1", "o2", "2024-02-03T11:30:00", quantity=3, unit_price=2.5),
        line("1", "C9", "2024-02-04T09:00:00", quantity=-1),  # cancellation
        line(" 2 ", "o3", "2024-01-06T08:00:00"),  # trimmed id, a Saturday
        line("2", "o4.0", "2024-03-31T23:59:59", unit_price=0.0),  # zero price: a purchase
        line("3.0", "o5", "2024-02-01T00:00:00"),  # float-exported id → "3"
        line("3", "o6", "2024-02-01T00:00:00", category=None),  # same time, no category
        line("4", "C10", "2024-02-01T00:00:00", quantity=-2),  # only a return
        line(None, "o7", "2024-01-01T00:00:00"),
        line("5", None, "2024-01-01T00:00:00"),
        line("5", "o8", None),
        line("5", "o9", "1980-01-01T00:00:00"),
        line("5", "o10", "2024-01-01T00:00:00", quantity=None),
        line("5", "o11", "2024-01-01T00:00:00", quantity=1e16),
        line("5", "o12", "2024-01-01T00:00:00", unit_price=None),
        line("5", "o13", "2099-01-01T00:00:00"),
        line("5", "o14", "2024-01-01T00:00:00", unit_price=-1.0),
        line("5", "o15", "2024-01-01T00:00:00", quantity=0),
        line("5", "o16", "2024-01-01T00:00:00", quantity=1e8, unit_price=1e8),
        line("\u00a06\u00a0", "o17", "2024-01-15T12:00:00"),  # no-break spaces trimmed
        line("6", "o18", "2024-02-15T12:00:00"),
        line("6", "o19", "2024-03-20T12:00:00", quantity=2),
    ]


def test_awkward_lines_cleaned_as_predict_cleans_them(model):
    recs = awkward_lines()
    frame = pd.DataFrame(scoring.order_columns(recs))
    for end in (None, "2024-06-30"):
        ref = scoring.predict_detailed(model, frame, observation_end=end)
        scored = scoring.score_orders(model, recs, observation_end=end)
        pd.testing.assert_frame_equal(got(scored), expected(ref), check_exact=True)
        assert scored.rows == ref.rows
        q = ref.quarantine
        np.testing.assert_array_equal(scored.rejected_rows, q["_row"].to_numpy() - 1)
        np.testing.assert_array_equal(scored.rejected_reasons, q["reason"].astype(str))
        assert scored.info["customers_only_returns"] == ref.info["customers_only_returns"] == 1
    assert set(scored.rows["quarantined"]) >= {
        "duplicate",
        "missing_customer_id",
        "missing_order_id",
        "missing_date",
        "implausible_date",
        "missing_quantity",
        "invalid_quantity",
        "missing_unit_price",
        "future_date",
        "negative_price",
        "zero_quantity",
        "implausible_amount",
    }
    assert scored.observation_end == dt.datetime(2024, 6, 30)


def test_rules_of_the_run_apply(model):
    recs = awkward_lines()
    frame = pd.DataFrame(scoring.order_columns(recs))
    strict = {
        "cleaning": {"returns": "quarantine", "zero_price": "quarantine", "max_date": "2024-04-15"}
    }
    settings = Settings.build(model.meta["settings"]).merged(strict)
    m = type(model)(model.preprocessor, model.estimator, {**model.meta}, model.churn)
    m.meta["settings"] = settings.model_dump(mode="json")
    ref = scoring.predict_detailed(m, frame)
    scored = scoring.score_orders(m, recs)
    pd.testing.assert_frame_equal(got(scored), expected(ref), check_exact=True)
    assert scored.rows == ref.rows
    assert {"return", "zero_price", "future_date"} <= set(scored.rows["quarantined"])


def test_trim_is_duckdbs():
    values = ["a", " a ", "\u00a0a", "\ta\n", "\u3000a\u2003", " ", "", "a\u200b", "\u2028a"]
    con = duckdb.connect()
    for v in values:
        want = con.execute("SELECT nullif(trim(?), '')", [v]).fetchone()[0]
        assert trim(v) == want, repr(v)


def test_observation_end_before_the_data_is_refused(model):
    with pytest.raises(InputError) as err:
        scoring.score_orders(model, awkward_lines(), observation_end="2024-02-01")
    assert err.value.settings == ("observation_end",)


def test_nothing_left_is_refused(model):
    lines = [{"customer_id": "1", "order_id": "C1", "ts": "2024-01-01", "quantity": -1,
              "unit_price": 3.0}]  # fmt: skip
    with pytest.raises(InputError, match="no purchases are left"):
        scoring.score_orders(model, lines)


# -- refusals of bad records ------------------------------------------------------------------
@pytest.fixture
def one_record(served, model):
    numeric, _ = scoring.feature_columns(model)
    customers = pd.read_parquet(served.folder / "customers.parquet")
    return records(customers[["customer_id", *numeric]].head(1))[0]


@pytest.mark.parametrize(
    ("change", "code", "column"),
    [
        ({"frequency": "3"}, "input.invalid", "frequency"),
        ({"frequency": True}, "input.invalid", "frequency"),
        ({"monetary": float("inf")}, "input.invalid", "monetary"),
        ({"monetary": float("nan")}, "input.invalid", "monetary"),
        ({"monetary": 10**400}, "input.invalid", "monetary"),
        ({"customer_id": ""}, "input.invalid", "customer_id"),
        ({"customer_id": None}, "input.missing_column", "customer_id"),
    ],
)
def test_bad_feature_values_are_refused(model, one_record, change, code, column):
    rec = {**one_record, **change}
    with pytest.raises(InputError) as err:
        scoring.score_customers(model, [one_record | {"customer_id": "ok"}, rec])
    assert (err.value.code, err.value.column) == (code, column)
    assert "customer 1" in str(err.value)


def test_missing_feature_and_repeated_id_are_refused(model, one_record):
    rec = dict(one_record)
    del rec["tenure_days"]
    with pytest.raises(InputError, match=r"customer 0 .* 'tenure_days'") as err:
        scoring.score_customers(model, [rec])
    assert err.value.code == "input.missing_column" and err.value.column == "tenure_days"
    with pytest.raises(InputError, match="repeats the customer_id"):
        scoring.score_customers(model, [one_record, one_record])
    with pytest.raises(InputError, match="no customer"):
        scoring.score_customers(model, [])


def test_bad_order_lines_are_refused(model):
    line = {"customer_id": "1", "order_id": "1", "ts": "2024-01-01", "quantity": 1,
            "unit_price": 2.0}  # fmt: skip
    for bad, code in (
        ({"ts": "yesterday"}, "input.invalid"),
        ({"quantity": "2"}, "input.invalid"),
        ({"colour": "red"}, "input.unknown_column"),
    ):
        with pytest.raises(InputError) as err:
            scoring.score_orders(model, [line, {**line, **bad}])
        assert err.value.code == code
    no_price = {k: v for k, v in line.items() if k != "unit_price"}
    with pytest.raises(InputError) as err:
        scoring.score_orders(model, [no_price])
    assert err.value.code == "input.missing_column"


# -- the compiled model ---------------------------------------------------------------------
@pytest.mark.parametrize("which", ["model", "gmm"])
def test_compiled_transform_is_the_models(served, which, request):
    m = request.getfixturevalue(which)
    fast = fast_model(m)
    assert fast.compiled and fast_model(m) is fast
    customers = pd.read_parquet(served.folder / "customers.parquet")
    np.testing.assert_array_equal(fast.transform(customers), m.transform(customers))
    fallback = FastModel(m)
    fallback.compiled = False
    pd.testing.assert_frame_equal(fallback.predict(customers), m.predict_frame(customers))
    pd.testing.assert_frame_equal(fast.predict(customers), m.predict_frame(customers))


def test_a_preprocessor_of_another_shape_is_not_compiled(mall):
    _, m = mall
    clone = type(m)(m.preprocessor, m.estimator, {**m.meta, "numeric": m.numeric[::-1]}, m.churn)
    assert not FastModel(clone).compiled


def test_score_columns_are_chosen_once():
    cols = ["customer_id", "segment", "segment_name", "distance", "confidence", "prob_0",
            "prob_1", "low_confidence", "churn_probability", "extra"]  # fmt: skip
    assert scoring.score_columns(pd.DataFrame(columns=cols)) == [
        "customer_id", "segment", "segment_name", "confidence", "prob_0", "prob_1",
        "low_confidence", "churn_probability",
    ]  # fmt: skip


# -- the route ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(served):
    with client(served.root) as c:
        yield c


def test_route_scores_orders_as_the_library(api, served, model):
    lines = pd.read_parquet(served.orders)
    first = lines[lines["customer_id"] == lines["customer_id"].iloc[0]]
    body = {"orders": records(first), "observation_end": "2026-12-31"}
    r = api.post("/v1/runs/prod/score", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    data = r.json()
    from segmint.api.routes.scoring import ScoreResponse

    ScoreResponse.model_validate(data)
    lib = scoring.score_orders(model, records(first), observation_end="2026-12-31")
    assert data["customers"] == lib.records()
    assert data["run"] == served.run_id and data["observation_end"] == "2026-12-31T00:00:00"
    assert data["quarantined"] == sum(data["rows"]["quarantined"].values())
    assert data["rejected"] == lib.rejected()


def test_route_scores_features_and_caches_the_model(api, served, model):
    numeric, _ = scoring.feature_columns(model)
    customers = pd.read_parquet(served.folder / "customers.parquet")
    recs = records(customers[["customer_id", *numeric]].head(50))
    r = api.post(f"/v1/runs/{served.run_id}/score", json={"customers": recs}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["customers"] == scoring.score_customers(model, recs).records()
    cache = api.app.state.models
    before = cache.info()
    api.post("/v1/runs/prod/score", json={"customers": recs[:1]}, headers=AUTH)
    after = cache.info()
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customers": []}, 422, "request.invalid"),
        ({"orders": []}, 422, "request.invalid"),
        ({}, 422, "request.invalid"),
        ({"customers": [{"customer_id": "1"}], "orders": []}, 422, "request.invalid"),
        ({"customers": [{"customer_id": "1"}]}, 400, "input.missing_column"),
        ({"customers": [{"customer_id": 1.5}]}, 422, "request.invalid"),
        ({"orders": [{"customer_id": "1"}]}, 422, "request.invalid"),
        ({"customers": [{"customer_id": str(i)} for i in range(10_001)]}, 422, "request.invalid"),
    ],
)
def test_route_refuses_bad_bodies(api, body, status, code):
    r = api.post("/v1/runs/prod/score", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_route_needs_a_key_and_a_run(api):
    body = {"customers": [{"customer_id": "1"}]}
    assert api.post("/v1/runs/prod/score", json=body).status_code == 401
    r = api.post("/v1/runs/nothing-here/score", json=body, headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "run.not_found"
    r = api.post("/v1/runs/prod/score", content=b"{not json", headers=AUTH)
    assert r.status_code == 422


def test_openapi_documents_the_body_and_the_answer(api):
    op = api.get("/openapi.json").json()["paths"]["/v1/runs/{ref}/score"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    kinds = {tuple(sorted(b["required"])): b for b in body["oneOf"]}
    assert set(kinds) == {("customers",), ("orders",)}
    customers = kinds[("customers",)]["properties"]
    assert {"customers", "input", "observation_end"} <= set(customers)
    assert customers["customers"]["maxItems"] == 10_000
    assert kinds[("orders",)]["properties"]["orders"]["maxItems"] == 100_000
    assert "200" in op["responses"] and "400" in op["responses"]


def test_a_deleted_run_is_not_scored(tmp_path):
    served = make_served(tmp_path / "w", customers=120, seed=2)
    body = {"customers": [{"customer_id": "1"}]}
    with client(served.root) as c:
        assert c.post("/v1/runs/prod/score", json=body, headers=AUTH).status_code == 400
        assert c.delete(f"/v1/runs/{served.run_id}", headers=AUTH).status_code in (200, 204)
        r = c.post("/v1/runs/prod/score", json=body, headers=AUTH)  # within the reuse second
        assert r.status_code == 404, r.text
