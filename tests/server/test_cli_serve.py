"""``majordome serve``: refuses to start without keys; serves, then stops on SIGINT."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from majordome.cli import app
from majordome.server import hash_key


def test_serve_without_keys_exits_3() -> None:
    result = CliRunner().invoke(app, ["serve"], env={})
    assert result.exit_code == 3
    assert "--keys" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_answers_then_stops_on_sigint(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"creator_42": [hash_key("sk-cli-test-key")]}))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAJORDOME_", "AZURE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "majordome.cli", "serve", "--port", str(port), "--keys", str(keys)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        models = httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer sk-cli-test-key"}, timeout=5)
        assert models.status_code == 200 and models.json()["data"][0]["id"] == "majordome"
        assert httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal: 130 (128 + SIGINT) is a clean stop
    assert process.returncode in (0, 130, -signal.SIGINT), output
    assert "Application shutdown complete" in output
    assert "sk-cli-test-key" not in output
