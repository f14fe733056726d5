"""A forgeai-ls subprocess driven over stdio by hand: for tests that must kill it, or watch
exactly what it answers (pytest-lsp's client would shut it down itself)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _default_signals() -> None:
    """As an editor starts it: SIGHUP and SIGINT not inherited as ignored (nohup, `cmd &`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


class RawLspServer:
    """Just enough of an LSP client over stdio to start runs and then kill the server."""

    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forgeai_ls"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "FORGEAI_HOME": str(home)},
            preexec_fn=_default_signals,
        )
        self.messages: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self._next = 0

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            message = json.loads(stream.read(length))
            with self._changed:
                self.messages.append(message)
                self._changed.notify_all()

    def send(self, method: str, params: Any, *, request: bool = True) -> int:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self._next += 1
            message["id"] = self._next
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()
        return self._next

    def wait_for(self, predicate: Any, seconds: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        with self._changed:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                assert left > 0, "the server did not answer"
                self._changed.wait(left)

    def run_file(self, path: Path, text: str) -> int:
        uri = path.as_uri()
        self.send(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
            request=False,
        )
        return self.send(
            "workspace/executeCommand", {"command": "forgeai.runFile", "arguments": [uri]}
        )
