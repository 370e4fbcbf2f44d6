"""Starting and cancelling runs over HTTP (``POST /v1/runs``, ``POST /v1/runs/{RUN}/cancel``):
uploads and data-directory paths run in a worker and end succeeded, failed with the reason, or
failed: cancelled; paths never leave the data directory; settings are checked with the field
named; uploads over the limit are refused as they arrive; a busy server says 429."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from segmint.api import create_app
from segmint.api.config import ServerSettings
from segmint.pipeline.launch import LOG_FILE, SLOTS_DIR, Launcher
from segmint.store.workspace import Workspace
from tests.api_support import AUTH, KEY

JSON = "application/json"
FAST = {"clustering": {"stability_runs": 0, "bootstrap": 10, "k_max": 5}}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The data directory: small and larger order lines, a file without a customer column,
    and links that stay inside or lead outside."""
    from segmint.data.synth import generate_orders

    root = tmp_path_factory.mktemp("api-jobs")
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    generate_orders(300, data / "orders.csv", seed=5)
    generate_orders(3000, data / "larger.csv", seed=6)
    (data / "no_customer.csv").write_text(
        "order_id,ts,quantity,unit_price\n"
        + "".join(f"{i},2024-01-0{i},1,9.5\n" for i in range(1, 9))
    )
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text((data / "orders.csv").read_text())
    (data / "escape.csv").symlink_to(outside / "secret.csv")
    (data / "escape_dir").symlink_to(outside, target_is_directory=True)
    (data / "sub" / "inside.csv").symlink_to(data / "orders.csv")
    return data


@pytest.fixture
def app_client(tmp_path, data):
    def make(**settings) -> TestClient:
        given = {"api_keys": (KEY,), "data_dir": data, **settings}
        app = create_app(tmp_path / "ws", settings=ServerSettings(**given))
        return TestClient(app, raise_server_exceptions=False)

    made: list[TestClient] = []

    def factory(**settings) -> TestClient:
        made.append(make(**settings))
        return made[-1]

    yield factory
    for c in made:
        launcher = getattr(c.app.state, "launcher", None)
        if launcher is not None:
            assert launcher.wait(120), "a worker outlived its test"


@pytest.fixture
def api(app_client) -> TestClient:
    return app_client()


def upload(api: TestClient, files: list[tuple[str, bytes]], settings=None, **fields):
    parts = [("files", (name, body, "text/csv")) for name, body in files]
    form: dict = {"settings": json.dumps(FAST if settings is None else settings), **fields}
    return api.post("/v1/runs", headers=AUTH, files=parts, data=form)


def finished(api: TestClient, run_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.get(f"/v1/runs/{run_id}", headers=AUTH)
        assert r.status_code == 200, r.text
        if r.json()["run"]["state"] != "running":
            return r.json()
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still running after {timeout} s")


def uploads_of(api: TestClient) -> list[str]:
    root: Path = api.app.state.workspace.uploads_dir
    return sorted(p.name for p in root.iterdir() if p.name != SLOTS_DIR) if root.is_dir() else []


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_an_upload_runs_in_a_worker_to_a_registered_run_folder(api, data):
    body = (data / "orders.csv").read_bytes()
    r = upload(api, [("../../Q1 orders.csv", body)], name="api run", tags=["nightly", "q1"])
    assert r.status_code == 202, r.text
    started = r.json()
    run_id = started["id"]
    assert r.headers["location"] == f"/v1/runs/{run_id}"
    assert started["run"]["status"] == "running" and started["run"]["pid"] != os.getpid()
    ws: Workspace = api.app.state.workspace
    uploaded = ws.uploads_for(run_id) / "01-Q1_orders.csv"
    assert started["run"]["inputs"] == [{"path": str(uploaded)}]
    assert uploaded.read_bytes() == body

    done = finished(api, run_id)
    row = done["run"]
    assert row["state"] == "succeeded", row["error"]
    assert (row["name"], row["tags"], row["customers"]) == ("api run", ["nightly", "q1"], 300)
    assert row["inputs"][0]["sha256"] and done["manifest"]["k"] >= 2
    assert (ws.folder_for(run_id) / "manifest.json").is_file()
    assert row["config"]["clustering"]["stability_runs"] == 0  # the settings sent were used
    assert f"run {run_id} succeeded" in (ws.uploads_for(run_id) / LOG_FILE).read_text()
    assert api.app.state.launcher.wait(30) and gone(row["pid"])

    # deleting the run removes its folder and its uploads
    assert api.delete(f"/v1/runs/{run_id}", headers=AUTH).status_code == 200
    assert not ws.folder_for(run_id).exists() and not ws.uploads_for(run_id).exists()


def test_a_path_in_the_data_directory_runs(api):
    r = api.post("/v1/runs", headers=AUTH, json={"paths": ["sub/inside.csv"], "settings": FAST})
    assert r.status_code == 202, r.text
    row = finished(api, r.json()["id"])["run"]
    assert row["state"] == "succeeded", row["error"]
    assert row["inputs"][0]["path"].endswith("/data/orders.csv")  # the link, resolved


@pytest.mark.parametrize(
    "path", ["../outside/secret.csv", "escape.csv", "escape_dir/secret.csv", "sub/../../x.csv"]
)
def test_paths_leading_outside_the_data_directory_are_refused(api, data, path):
    r = api.post("/v1/runs", headers=AUTH, json={"paths": [path]})
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "path.forbidden" and path in error["message"]
    assert str(data.parent / "outside") not in r.text  # where it led is not told
    assert uploads_of(api) == [] and api.app.state.workspace.registry.count() == 0


def test_absolute_paths_count_only_inside_the_data_directory(api, data):
    outside = data.parent / "outside" / "secret.csv"
    r = api.post("/v1/runs", headers=AUTH, json={"paths": [str(outside)]})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "path.forbidden")
    r = api.post("/v1/runs", headers=AUTH, json={"paths": ["/etc/passwd"]})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "path.forbidden")
    r = api.post("/v1/runs", headers=AUTH, json={"paths": [str(data / "nope.csv")]})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "input.unreadable"
    assert "nope.csv" in r.json()["error"]["message"]


def test_path_mode_is_off_without_a_data_directory(app_client):
    api = app_client(data_dir=None)
    r = api.post("/v1/runs", headers=AUTH, json={"paths": ["orders.csv"]})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "paths.disabled")
    assert "SEGMINT_DATA_DIR" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"clustering": {"k": 1}}, "clustering.k"),
        ({"inputs": ["/etc/passwd"]}, "inputs"),
        ({"out": "/tmp/x"}, "out"),
        ({"colour": "blue"}, "colour"),
        ({"observation_end": "yesterday"}, "observation_end"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(api, data, settings, field):
    r = api.post("/v1/runs", headers=AUTH, json={"paths": ["orders.csv"], "settings": settings})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "config.invalid"
    assert f"settings.{field}" in error["message"] and field in error["details"]["settings"]
    r = upload(api, [("orders.csv", (data / "orders.csv").read_bytes())], settings=settings)
    assert r.status_code == 422 and f"settings.{field}" in r.json()["error"]["message"]
    assert uploads_of(api) == [] and api.app.state.workspace.registry.count() == 0


def test_malformed_requests_are_refused_in_the_error_shape(api, data):
    body = (data / "orders.csv").read_bytes()
    cases = [
        (upload(api, [("orders.json", body)]), 400, "input.unreadable"),
        (upload(api, [("orders.xls", body)]), 400, "input.unreadable"),
        (
            api.post("/v1/runs", headers=AUTH, files={"settings": (None, "{}")}),
            422,
            "request.invalid",
        ),
        (
            api.post(
                "/v1/runs",
                headers=AUTH,
                files=[("files", ("a.csv", body, "text/csv"))],
                data={"settings": "{not json"},
            ),
            422,
            "config.invalid",
        ),
        (
            api.post(
                "/v1/runs",
                headers=AUTH,
                files=[("data", ("a.csv", body, "text/csv"))],
            ),
            422,
            "request.invalid",
        ),
        (api.post("/v1/runs", headers=AUTH, json={"paths": []}), 422, "request.invalid"),
        (api.post("/v1/runs", headers=AUTH, json=["orders.csv"]), 422, "request.invalid"),
        (
            api.post(
                "/v1/runs", headers={**AUTH, "content-type": "application/json"}, content=b"{"
            ),
            400,
            "request.bad",
        ),
        (
            api.post("/v1/runs", headers={**AUTH, "content-type": "text/csv"}, content=body),
            415,
            "request.unsupported_media_type",
        ),
        (
            api.post("/v1/runs", headers=AUTH, json={"paths": ["orders.csv"], "tags": ["latest"]}),
            422,
            "config.invalid",
        ),
        (api.post("/v1/runs", json={"paths": ["orders.csv"]}), 401, "auth.required"),
    ]
    for r, status, code in cases:
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert uploads_of(api) == [] and api.app.state.workspace.registry.count() == 0


def test_a_file_the_pipeline_refuses_ends_the_run_failed_with_the_reason(api, data):
    r = upload(api, [("no_customer.csv", (data / "no_customer.csv").read_bytes())])
    assert r.status_code == 202, r.text
    row = finished(api, r.json()["id"])["run"]
    assert row["state"] == "failed"
    assert row["error"].startswith("[input.") and "no_customer.csv" in row["error"]
    assert not Path(row["folder"]).exists()


def test_uploads_over_the_limit_are_refused_as_they_arrive(app_client, data):
    api = app_client(max_upload_bytes=4096)
    body = (data / "orders.csv").read_bytes()
    assert len(body) > 4096
    r = upload(api, [("orders.csv", body)])  # declared length: refused before reading
    assert (r.status_code, r.json()["error"]["code"]) == (413, "request.too_large")

    boundary = "segmint-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="o.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()

    def chunked():  # no Content-Length: counted while it arrives
        yield head
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]
        yield f"\r\n--{boundary}--\r\n".encode()

    r = api.post(
        "/v1/runs",
        headers={**AUTH, "content-type": f"multipart/form-data; boundary={boundary}"},
        content=chunked(),
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "request.too_large")
    assert uploads_of(api) == [] and api.app.state.workspace.registry.count() == 0


def test_a_busy_server_says_429_before_reading_the_upload(app_client, data):
    api = app_client(max_jobs=1)
    other = Launcher(api.app.state.workspace, max_jobs=1)  # e.g. another server process
    held = other.reserve()
    try:
        r = upload(api, [("orders.csv", (data / "orders.csv").read_bytes())])
        assert (r.status_code, r.json()["error"]["code"]) == (429, "server.busy")
        assert int(r.headers["retry-after"]) > 0
        assert uploads_of(api) == [held.run_id]  # only the other one's
    finally:
        held.release()
    assert uploads_of(api) == []


def test_cancel_stops_the_worker_and_the_run_ends_cancelled(api):
    r = api.post("/v1/runs", headers=AUTH, json={"paths": ["larger.csv"], "settings": FAST})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    ws: Workspace = api.app.state.workspace
    log = ws.uploads_for(run_id) / LOG_FILE
    deadline = time.monotonic() + 60
    while f"run {run_id} adopted" not in log.read_text():  # the worker is on the run
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    pid = r.json()["run"]["pid"]
    c = api.post(f"/v1/runs/{run_id[:10]}/cancel", headers=AUTH)
    assert c.status_code == 202, c.text
    assert c.json()["id"] == run_id
    row = finished(api, run_id, timeout=60)["run"]
    assert (row["state"], row["error"]) == ("failed", "cancelled")
    assert api.app.state.launcher.wait(30) and gone(pid)  # no orphan, no zombie
    assert not ws.folder_for(run_id).exists()
    again = api.post(f"/v1/runs/{run_id}/cancel", headers=AUTH)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "run.state")
    missing = api.post("/v1/runs/zzzzzzzzzz/cancel", headers=AUTH)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "run.not_found")


def test_both_request_bodies_are_in_the_openapi_document(api):
    op = api.get("/openapi.json").json()["paths"]["/v1/runs"]["post"]
    content = op["requestBody"]["content"]
    upload_schema = content["multipart/form-data"]["schema"]
    assert upload_schema["properties"]["files"]["items"]["format"] == "binary"
    assert content["multipart/form-data"]["encoding"]["settings"]["contentType"] == (
        "application/json"
    )
    settings = content["application/json"]["schema"]["properties"]["settings"]
    assert "clustering" in settings["properties"] and "inputs" not in settings["properties"]
    assert "$ref" not in json.dumps(content)  # stands on its own
    assert {"202", "403", "413", "422", "429"} <= set(op["responses"])
    cancel = api.get("/openapi.json").json()["paths"]["/v1/runs/{ref}/cancel"]["post"]
    assert {"202", "404", "409"} <= set(cancel["responses"])
