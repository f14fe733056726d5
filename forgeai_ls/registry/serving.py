"""Serving the registry over HTTP with uvicorn (the 'registry' extra)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from forgeai_ls.errors import RegistryServerError
from forgeai_ls.registry.app import create_app
from forgeai_ls.registry.service import RegistryService

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _AnnouncingServer(uvicorn.Server):
    """Prints where it serves once it accepts connections; SIGTERM and SIGINT stop it
    gracefully and the command then exits 0 (uvicorn would re-raise the signal)."""

    def __init__(self, config: uvicorn.Config, announcement: str) -> None:
        super().__init__(config)
        self.announcement = announcement

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sys.stderr.write(self.announcement + "\n")
            sys.stderr.flush()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto must be IPPROTO_TCP: asyncio only disables Nagle (TCP_NODELAY) on accepted
        # sockets that say so, and without it every keep-alive answer waits ~40 ms for the
        # client's delayed ACK.
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        raise RegistryServerError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (0 picks a free one) or --host",
        ) from None
    listener.set_inheritable(True)
    return listener


def serve_registry(host: str, port: int, directory: Path, **limits: int) -> None:
    """Serve the registry in ``directory`` until SIGTERM or Ctrl-C."""
    service = RegistryService.embedded(directory, **limits)
    try:
        listener = _listen(host, port)
        bound_port = listener.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        config = uvicorn.Config(
            create_app(service), log_level="warning", access_log=False, lifespan="off"
        )
        server = _AnnouncingServer(
            config,
            f"forgeai registry: serving http://{shown_host}:{bound_port} (data {directory})",
        )
        with listener:
            asyncio.run(server.serve(sockets=[listener]))
    finally:
        service.close()
