"""Running the app with uvicorn: in the foreground (``majordome serve``) or in a thread."""

from __future__ import annotations

import math
import socket
import threading
import time
from types import TracebackType

from fastapi import FastAPI

from majordome._client import Majordome
from majordome._errors import ConfigurationError
from majordome.server._app import create_app
from majordome.server._auth import ApiKeys
from majordome.server._limits import ServerLimits

__all__ = ["BackgroundServer", "serve"]


def _uvicorn_config(app: FastAPI, host: str, port: int, limits: ServerLimits, log_level: str) -> object:
    try:
        import uvicorn
    except ImportError as error:  # pragma: no cover - the [server] extra installs it
        raise ConfigurationError("majordome serve needs uvicorn: pip install 'majordome[server]'") from error
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(limits.shutdown_grace_s),  # bounded: None would wait forever
    )


def serve(
    majordome: Majordome,
    keys: ApiKeys,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
    log_level: str = "info",
) -> None:
    """Serve the OpenAI-compatible API until SIGINT/SIGTERM, then shut down gracefully."""
    import uvicorn

    if len(keys) == 0:
        raise ConfigurationError("no API key is configured: every request would be refused (give --keys FILE)")
    limits = limits or ServerLimits()
    config = _uvicorn_config(create_app(majordome, keys, limits=limits), host, port, limits, log_level)
    assert isinstance(config, uvicorn.Config)
    uvicorn.Server(config).run()


class BackgroundServer:
    """The app served by uvicorn in a daemon thread on a free loopback port (tests, benchmarks).

    ``with BackgroundServer(app) as server: server.base_url`` → ``http://127.0.0.1:<port>``.
    Stopping it runs the app's shutdown (which closes its Majordome).
    """

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = _uvicorn_config(app, host, self.port, ServerLimits(), log_level)
        assert isinstance(config, uvicorn.Config)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="majordome-server", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
