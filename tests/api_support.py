"""Shared by the API tests: a workspace holding one small finished run, and a client for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

import segmint
from segmint.api import create_app
from segmint.api.config import ServerSettings
from segmint.config import Settings

KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
FAST = {
    "clustering": {"stability_runs": 0, "bootstrap": 10, "k_max": 5},
    "explain": {"drivers": True, "drivers_sample": 300, "drivers_repeats": 2},
    "churn": {"enabled": True},
    "clv": {"enabled": True},
}


@dataclass(frozen=True)
class Served:
    """A workspace with one finished run (tagged ``prod``) made from ``orders``."""

    root: Path
    orders: Path
    run_id: str  # the folder is <workspace>/runs/<id>
    folder: Path


def make_served(root: Path, customers: int = 300, seed: int = 11) -> Served:
    from segmint.data.synth import generate_orders

    root.mkdir(parents=True, exist_ok=True)
    orders = root / "orders.parquet"
    generate_orders(customers, orders, seed=seed)
    settings = Settings.build({**FAST, "seed": seed})
    result = segmint.segment(str(orders), settings=settings)
    folder = segmint.save(result, workspace=root / "ws", name="first", tags=["prod"])
    return Served(root / "ws", orders, folder.name, folder)


def client(root: Path, **settings: object) -> TestClient:
    """A client of the API over ``root``, accepting ``KEY``."""
    app = create_app(root, settings=ServerSettings(api_keys=(KEY,), **settings))
    return TestClient(app, raise_server_exceptions=False)
