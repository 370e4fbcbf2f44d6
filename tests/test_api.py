"""The REST API's skeleton: keys, the one error shape, size limits, and the read routes over a
real run (runs, segments, customers, exports, report, tables)."""

from __future__ import annotations

import io
import os
import stat
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from segmint.api import create_app
from segmint.api.config import ServerSettings
from segmint.cli import app as cli_app
from segmint.cli.serve import is_loopback
from segmint.exceptions import ConfigError
from segmint.store.workspace import Workspace
from tests.api_support import AUTH, KEY, client, make_served

RISKY_ID = '=HYPERLINK("http://evil")'


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = make_served(tmp_path_factory.mktemp("api"))
    return s


@pytest.fixture(scope="module")
def api(served):
    with client(served.root) as c:
        yield c


def customers_file(served) -> pd.DataFrame:
    return pd.read_parquet(served.folder / "customers.parquet")


def test_health_needs_no_key_and_says_the_version(api):
    r = api.get("/v1/health")
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["status"] == "ok" and body["registry"] == "ok" and body["version"]


def test_every_v1_route_but_health_needs_a_key(api):
    paths = api.get("/openapi.json").json()["paths"]
    checked = 0
    for path, methods in paths.items():
        if not path.startswith("/v1/") or path == "/v1/health":
            continue
        url = path.replace("{ref}", "latest").replace("{customer_id}", "x")
        for method in methods:
            for headers in (
                {},
                {"X-API-Key": "wrong-key-0123456789"},
                {"Authorization": "Bearer x"},
            ):
                r = api.request(method.upper(), url, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert r.json()["error"]["code"] in ("auth.required", "auth.invalid")
            checked += 1
    assert checked >= 10


def test_both_key_headers_are_accepted(api):
    assert api.get("/v1/runs", headers={"X-API-Key": KEY}).status_code == 200
    assert api.get("/v1/runs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert api.get("/v1/runs", headers={"Authorization": f"Basic {KEY}"}).status_code == 401


def test_a_workspace_key_is_made_private_once_and_reused(tmp_path):
    c1 = create_app(tmp_path / "ws", settings=ServerSettings())
    path = tmp_path / "ws" / "api-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert c1.state.keys.created == key and len(key) >= 32
    c2 = create_app(tmp_path / "ws", settings=ServerSettings())
    assert c2.state.keys.created is None and c2.state.keys.accepts(key)
    assert not c2.state.keys.accepts(key[:-1]) and not c2.state.keys.accepts("")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        create_app(tmp_path / "ws", settings=ServerSettings())


def test_configured_keys_come_from_the_environment():
    s = ServerSettings.from_env({"SEGMINT_API_KEY": f"{KEY}, second-key-abcdefghij"})
    assert s.api_keys == (KEY, "second-key-abcdefghij")
    with pytest.raises(ConfigError, match="SEGMINT_API_KEY"):
        ServerSettings.from_env({"SEGMINT_API_KEY": "short"})
    with pytest.raises(ConfigError, match="SEGMINT_MAX_BODY_BYTES"):
        ServerSettings.from_env({"SEGMINT_MAX_BODY_BYTES": "lots"})


def test_runs_are_listed_filtered_and_paged(api, served):
    body = api.get("/v1/runs", headers=AUTH).json()
    assert body["total"] >= 1 and body["runs"][0]["id"] == served.run_id
    assert api.get("/v1/runs?tag=prod", headers=AUTH).json()["runs"][0]["tags"] == ["prod"]
    assert api.get("/v1/runs?kind=track", headers=AUTH).json() == {
        "total": 0,
        "limit": 50,
        "offset": 0,
        "runs": [],
    }
    assert api.get("/v1/runs?offset=1", headers=AUTH).json()["runs"] == []
    bad = api.get("/v1/runs?status=sleeping", headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "request.invalid"


def test_a_run_shows_its_row_and_manifest(api, served):
    for ref in (served.run_id, served.run_id[:8], "prod", "first", "latest"):
        body = api.get(f"/v1/runs/{ref}", headers=AUTH).json()
        assert body["run"]["id"] == served.run_id and body["run"]["state"] == "succeeded"
        assert body["manifest"]["k"] == body["run"]["k"]
    missing = api.get("/v1/runs/nosuchrun", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "code": "run.not_found",
        "message": missing.json()["error"]["message"],
        "details": {"ref": "nosuchrun"},
    }


def test_segments_carry_personas_sizes_and_strategies(api, served):
    body = api.get("/v1/runs/prod/segments", headers=AUTH).json()
    table = pd.read_parquet(served.folder / "tables" / "segments.parquet")
    assert [s["segment"] for s in body["segments"]] == table["segment"].tolist()
    assert sum(s["size"] for s in body["segments"]) == len(customers_file(served))
    first = body["segments"][0]
    assert first["segment_name"] == table["segment_name"].iloc[0]
    assert first["strategy"]["action"] == table["action"].iloc[0]
    assert "mean_recency_days" in first["profile"]


def test_customer_pages_cover_a_segment_in_order(api, served):
    frame = customers_file(served)
    seg = int(frame["segment"].mode().iloc[0])
    want = frame.loc[frame["segment"] == seg, "customer_id"].tolist()
    got, offset = [], 0
    while True:
        page = api.get(
            f"/v1/runs/latest/customers?segment={seg}&limit=7&offset={offset}", headers=AUTH
        ).json()
        assert page["total"] == len(want)
        if not page["customers"]:
            break
        got += [c["customer_id"] for c in page["customers"]]
        offset += 7
    assert got == want
    named = frame.loc[frame["segment"] == seg, "segment_name"].iloc[0]
    by_name = api.get("/v1/runs/latest/customers", params={"segment": named}, headers=AUTH)
    if (frame.drop_duplicates("segment")["segment_name"] == named).sum() == 1:
        assert by_name.json()["total"] == len(want)
    nope = api.get("/v1/runs/latest/customers?segment=99", headers=AUTH)
    assert nope.status_code == 404 and nope.json()["error"]["code"] == "segment.not_found"


def test_one_customer_has_scores_and_features(api, served):
    row = customers_file(served).iloc[5]
    body = api.get(f"/v1/runs/latest/customers/{row['customer_id']}", headers=AUTH).json()
    assert body["segment"] == row["segment"] and body["segment_name"] == row["segment_name"]
    assert body["confidence"] == pytest.approx(row["confidence"])
    assert body["churn_probability"] == pytest.approx(row["churn_probability"])
    assert body["clv"] == pytest.approx(row["clv"])
    assert body["features"]["frequency"] == row["frequency"]
    gone = api.get("/v1/runs/latest/customers/nobody", headers=AUTH)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "customer.not_found"


def test_export_streams_a_segment_as_csv_and_parquet(api, served):
    frame = customers_file(served)
    seg = int(frame["segment"].iloc[0])
    r = api.get(f"/v1/runs/latest/export?segment={seg}", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f"segment-{seg}.csv" in r.headers["content-disposition"]
    csv = pd.read_csv(io.StringIO(r.text), dtype={"customer_id": str})
    assert csv["customer_id"].tolist() == frame.loc[frame["segment"] == seg, "customer_id"].tolist()
    r = api.get("/v1/runs/latest/export?format=parquet", headers=AUTH)
    back = pd.read_parquet(io.BytesIO(r.content))
    pd.testing.assert_frame_equal(back, frame)
    bad = api.get("/v1/runs/latest/export?format=xlsx", headers=AUTH)
    assert bad.status_code == 422


def test_csv_export_cannot_run_formulas(tmp_path):
    s = make_served(tmp_path, customers=200, seed=5)
    orders = pd.read_parquet(s.orders)
    first = orders["customer_id"].iloc[0]
    orders["customer_id"] = orders["customer_id"].replace(first, RISKY_ID)
    orders.to_parquet(s.orders)
    import segmint
    from segmint.config import Settings
    from tests.api_support import FAST

    result = segmint.segment(str(s.orders), settings=Settings.build(FAST))
    segmint.save(result, workspace=s.root, tags=["risky"])
    with client(s.root) as c:
        text = c.get("/v1/runs/risky/export", headers=AUTH).text
        assert "'" + RISKY_ID.replace('"', '""') in text
        assert '\n"=' not in text and "\n=" not in text
        one = c.get(f"/v1/runs/risky/customers/{quote(RISKY_ID, safe='')}", headers=AUTH).json()
        assert one["customer_id"] == RISKY_ID  # JSON keeps the raw value


def test_tables_report_and_missing_tables(api):
    for slug in ("k-selection", "drivers", "tests", "anomalies", "posthoc"):
        body = api.get(f"/v1/runs/latest/{slug}", headers=AUTH).json()
        assert body["table"] == slug and body["rows"], slug
    ks = api.get("/v1/runs/latest/k-selection", headers=AUTH).json()["rows"]
    assert {"k", "silhouette"} <= set(ks[0])
    missing = api.get("/v1/runs/latest/comparison", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "artifact.missing"
    report = api.get("/v1/runs/latest/report", headers=AUTH)
    assert report.status_code == 200 and "<html" in report.text[:500].lower()


def test_unfinished_runs_are_409_and_unknown_routes_404(api, served):
    ws = Workspace.open(served.root)
    record = ws.registry.begin(
        kind="run", folder=served.root / "x", inputs=[], config={}, config_hash=None
    )
    busy = api.get(f"/v1/runs/{record.id}/segments", headers=AUTH)
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "run.state"
    ws.registry.fail(record.id, "it broke")
    failed = api.get(f"/v1/runs/{record.id}/customers", headers=AUTH)
    assert failed.status_code == 409 and "it broke" in failed.json()["error"]["message"]
    assert api.get(f"/v1/runs/{record.id}", headers=AUTH).json()["manifest"] is None
    assert api.delete(f"/v1/runs/{record.id}", headers=AUTH).status_code == 200
    r = api.get("/v1/nowhere", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "route.not_found"


def test_bodies_over_the_limit_are_413(served):
    app = create_app(served.root, settings=ServerSettings(api_keys=(KEY,), max_body_bytes=2048))

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    def chunks(n):
        for _ in range(n):
            yield b"y" * 1000

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/v1/echo", content=b"x" * 2000).json() == {"bytes": 2000}
        r = c.post("/v1/echo", content=b"x" * 5000)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"
        assert c.post("/v1/echo", content=chunks(2)).json() == {"bytes": 2000}
        r = c.post("/v1/echo", content=chunks(10))  # chunked: no length declared
        assert r.status_code == 413 and r.json()["error"]["details"]["limit_bytes"] == 2048


def test_cors_is_off_unless_configured(served):
    pre = {"Origin": "https://crm.example", "Access-Control-Request-Method": "GET"}
    with client(served.root) as c:
        r = c.options("/v1/runs", headers=pre)
        assert "access-control-allow-origin" not in r.headers
    with client(served.root, cors_origins=("https://crm.example",)) as c:
        r = c.options("/v1/runs", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://crm.example"


def test_delete_removes_the_row_and_folder(tmp_path):
    s = make_served(tmp_path, customers=200, seed=9)
    with client(s.root) as c:
        r = c.delete(f"/v1/runs/{s.run_id}", headers=AUTH)
        assert r.status_code == 200 and r.json()["folder_removed"] is True
        assert not s.folder.exists()
        assert c.get(f"/v1/runs/{s.run_id}", headers=AUTH).status_code == 404


def test_serve_refuses_a_public_address_without_a_key(tmp_path, monkeypatch):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    monkeypatch.delenv("SEGMINT_API_KEY", raising=False)
    res = CliRunner().invoke(
        cli_app, ["serve", "--workspace", str(tmp_path), "--host", "0.0.0.0", "--port", "8799"]
    )
    assert res.exit_code == 2 and "without an API key" in res.output
