"""Handing a program's files to a sandbox that is already running, through its stdin.

A sandbox started ahead of time (a warm slot, a pooled container) cannot receive its files as
mounts: it reads them from its stdin, then the program's own stdin follows on the same pipe.
The format: a line with the number of files, then per file a line ``SIZE NAME`` and SIZE
bytes. File names never contain line breaks (``files_preamble`` refuses them).
"""

from __future__ import annotations

from collections.abc import Mapping

SHELL_LAUNCHER = (
    "read -r n || exit 125; "
    'while [ "$n" -gt 0 ]; do '
    "read -r size name || exit 125; "
    'mkdir -p "$(dirname "/work/$name")" && head -c "$size" > "/work/$name" || exit 125; '
    "n=$((n - 1)); done; "
    'exec 3>&2 2>/dev/null; (exec 2>&3 3>&-; exec "$@"); exit $?'
)
"""/bin/sh script: reads the files into /work (``head -c SIZE`` reads exactly SIZE bytes),
then runs the command (argv after the script) and returns its exit status (128 + N for death
by signal N). Not ``exec``: the shell stays the parent and the program an ordinary process,
which the kernel's signals (SIGXCPU, SIGXFSZ) reach normally. The program runs in a subshell
that takes the original stderr back and execs it, while the shell's own stderr is /dev/null:
the shell's job report of a killed program (``Killed``) never reaches the program's stderr."""


def shell_launcher_argv(argv: tuple[str, ...] | list[str]) -> list[str]:
    """argv that runs ``argv`` after the launcher has read the files from stdin."""
    return ["/bin/sh", "-c", SHELL_LAUNCHER, "forgeai-launch", *argv]


def files_preamble(files: Mapping[str, bytes]) -> bytes:
    """The bytes a launcher reads before the program's own stdin."""
    for name in files:
        if "\n" in name or "\r" in name:
            raise ValueError(f"file name {name!r} contains a line break")
    header = f"{len(files)}\n".encode()
    return header + b"".join(
        f"{len(data)} {name}\n".encode() + data for name, data in files.items()
    )
