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


USAGE_MARKER = b"\x1eforgeai-usage"
"""Starts the line a reporting launcher writes to stderr after the program (see below)."""
_USAGE_FILES = (
    "cpu.stat",
    "cpuacct/cpuacct.usage",
    "cpuacct.usage",
    "memory.peak",
    "memory/memory.max_usage_in_bytes",
    "memory.max_usage_in_bytes",
    "pids.events",
    "pids/pids.events",
)
_REPORT_USAGE = (
    "s=$?; { printf '\\036forgeai-usage'; "
    f"for f in {' '.join(_USAGE_FILES)}; do "
    '[ -r "/sys/fs/cgroup/$f" ] && '
    "printf ' %s=%s' \"$f\" \"$(tr '\\n ' ',:' < \"/sys/fs/cgroup/$f\")\"; "
    "done; printf '\\n'; } >&3; exit $s"
)


def shell_launcher_argv(
    argv: tuple[str, ...] | list[str], *, report_usage: bool = False
) -> list[str]:
    """argv that runs ``argv`` after the launcher has read the files from stdin.

    ``report_usage`` (containers): once the program has ended, the launcher writes one more
    line to stderr, ``USAGE_MARKER`` and ``FILE=VALUE`` pairs read from the container's own
    cgroup (CPU time, peak memory, refused forks), which the docker backend takes off the
    program's stderr (``parse_usage``)."""
    script = SHELL_LAUNCHER
    if report_usage:
        script = script.removesuffix("exit $?") + _REPORT_USAGE
    return ["/bin/sh", "-c", script, "forgeai-launch", *argv]


def parse_usage(line: bytes) -> dict[str, str]:
    """``FILE=VALUE`` pairs of a usage line (values with ``,`` for newlines, ``:`` for
    spaces)."""
    pairs: dict[str, str] = {}
    for field in line.removeprefix(USAGE_MARKER).split():
        name, _, value = field.decode(errors="replace").partition("=")
        pairs[name] = value.replace(",", "\n").replace(":", " ").strip()
    return pairs


def files_preamble(files: Mapping[str, bytes]) -> bytes:
    """The bytes a launcher reads before the program's own stdin."""
    for name in files:
        if "\n" in name or "\r" in name:
            raise ValueError(f"file name {name!r} contains a line break")
    header = f"{len(files)}\n".encode()
    return header + b"".join(
        f"{len(data)} {name}\n".encode() + data for name, data in files.items()
    )
