"""``segmint serve``: the REST API (``segmint.api``) over a workspace, in uvicorn."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from segmint.cli.app import WorkspaceOption, app, guard, open_workspace, out
from segmint.exceptions import ConfigError

__all__ = ["serve"]

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """Refuse a port another process holds, with a message instead of uvicorn's log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ConfigError(
                [f"cannot listen on {host}:{port}: {exc.strerror}; choose another port"],
                settings=("port",),
            ) from None


@app.command()
def serve(
    workspace: WorkspaceOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback needs SEGMINT_API_KEY.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes (each serves every route).")
    ] = 1,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder new runs may read input files from by path "
            "(default: $SEGMINT_DATA_DIR; unset: uploads only)."
        ),
    ] = None,
) -> None:
    """Serve the REST API over the workspace (docs at /docs). Every route but /v1/health needs
    the API key: SEGMINT_API_KEY, else a key made once and kept in the workspace."""

    def go() -> None:
        import uvicorn

        from segmint.api.app import create_app, resolve_keys
        from segmint.api.config import ServerSettings

        settings = ServerSettings.from_env(data_dir=data_dir)
        if not is_loopback(host) and not settings.api_keys:
            raise ConfigError(
                [
                    f"refusing to listen on {host} without an API key: anyone who can reach "
                    "it could read and delete runs. Set SEGMINT_API_KEY (one or more keys, "
                    "comma-separated), or listen on 127.0.0.1"
                ],
                settings=("host",),
            )
        if settings.data_dir is not None and not settings.data_dir.is_dir():
            raise ConfigError(
                [f"the data folder {settings.data_dir} does not exist"], settings=("data_dir",)
            )
        ws = open_workspace(workspace)
        keys = resolve_keys(ws, settings)
        _check_port(host, port)
        shown = f"[{host}]" if ":" in host else host
        out.print(f"segmint API on http://{shown}:{port}/v1 (docs: http://{shown}:{port}/docs)")
        out.print(f"workspace {ws.root}")
        if keys.created:
            out.print(f"API key (saved to {keys.source}, shown only this once):")
            out.print(f"    {keys.created}", markup=False, highlight=False)
        elif keys.source == "SEGMINT_API_KEY":
            out.print("API keys: from SEGMINT_API_KEY")
        else:
            out.print(f"API key: in {keys.source}")
        if workers == 1:
            uvicorn.run(create_app(ws, settings=settings), host=host, port=port, log_level="info")
            return
        # each worker process builds its own app from the environment
        os.environ["SEGMINT_WORKSPACE"] = str(ws.root)
        if settings.data_dir is not None:
            os.environ["SEGMINT_DATA_DIR"] = str(settings.data_dir)
        ws.close()
        uvicorn.run(
            "segmint.api.app:from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )

    guard(go)
