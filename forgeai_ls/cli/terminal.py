"""Where a command reads and writes: this process's standard streams or, for a run served by
the daemon, the client's own descriptors passed over its socket.

Nothing heavy is imported here: the daemon's client uses it too.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: importing typing costs the client milliseconds
if TYPE_CHECKING:
    from typing import Any

    from forgeai_ls.errors import ForgeAIError

EXIT_FORGEAI_FAILED = 125
"""ForgeAI itself failed (docker run's convention)."""


class Terminal:
    __slots__ = ("stderr_fd", "stdin_fd", "stdout_fd")

    def __init__(self, stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2) -> None:
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd

    def write(self, fd: int, data: bytes) -> None:
        """Write all of ``data`` (blocking); BrokenPipeError when the reader has gone."""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def out(self, data: bytes) -> None:
        self.write(self.stdout_fd, data)

    def err(self, data: bytes) -> None:
        self.write(self.stderr_fd, data)

    @staticmethod
    def json_line(document: dict[str, Any]) -> bytes:
        import json

        return (json.dumps(document) + "\n").encode()

    def print_json(self, document: dict[str, Any]) -> None:
        self.out(self.json_line(document))

    def fail(self, error: ForgeAIError, args: list[str]) -> int:
        """One line on stderr; with --json also a JSON error object on stdout for scripts."""
        self.err(f"forgeai: {error.one_line()}\n".encode())
        if "--json" in args:
            document = {"code": error.code, "message": error.message, "hint": error.hint}
            self.print_json({"error": document})
        return EXIT_FORGEAI_FAILED
