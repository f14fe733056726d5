"""``forgeai daemon start|status|stop``: the per-user process that serves ``forgeai run``
from warm sandboxes (see ``daemon_client``). It starts by itself on the first run; these
commands start it ahead of time, show what runs and stop it."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Annotated, Any

import typer

from forgeai_ls.cli import daemon_client
from forgeai_ls.cli.report import print_json
from forgeai_ls.errors import DaemonStartError

daemon_app = typer.Typer(
    help="The per-user daemon that serves 'forgeai run' from warm sandboxes.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_START_SECONDS = 60.0


def _status(path: str) -> dict[str, Any] | None:
    answer = daemon_client.ask(path, "status")
    if answer is None:
        return None
    try:
        status = json.loads(answer)
    except ValueError:
        return None
    return status if isinstance(status, dict) else None


@daemon_app.command("start")
def start(as_json: JsonFlag = False) -> int:
    """Start the daemon for this environment (if none runs) and wait until it serves."""
    if not daemon_client.enabled():
        raise DaemonStartError("the daemon is turned off", hint="unset FORGEAI_DAEMON")
    cwd = os.getcwd()
    path = daemon_client.socket_path(daemon_client.identity(cwd))
    status = _status(path)
    if status is None:
        process = daemon_client.spawn_daemon(cwd, [])
        deadline = time.monotonic() + _START_SECONDS
        while status is None and time.monotonic() < deadline:
            if process.poll() not in (None, 0):
                break
            time.sleep(0.02)
            status = _status(path)
        if status is None:
            log = path[: -len(".sock")] + ".log"
            raise DaemonStartError(
                f"the daemon did not start serving {path}", hint=f"see its log: {log}"
            )
    if as_json:
        print_json(status)
    else:
        sys.stdout.write(f"forgeai daemon: serving {path} (pid {status['pid']})\n")
    return 0


@daemon_app.command("status")
def status(as_json: JsonFlag = False) -> int:
    """The running daemons of this user (one per environment), their runs and warm slots."""
    current = daemon_client.socket_path(daemon_client.identity(os.getcwd()))
    found = []
    for path in daemon_client.daemon_sockets():
        answer = _status(path)
        if answer is not None:
            found.append({**answer, "current": path == current})
    if as_json:
        print_json({"daemons": found})
        return 0
    if not found:
        sys.stdout.write("forgeai daemon: none running\n")
    for item in found:
        mark = " (this environment)" if item["current"] else ""
        sys.stdout.write(
            f"pid {item['pid']}: {item['runs']} runs, {item['active']} active, "
            f"{item['warm_slots']} warm sandboxes, socket {item['socket']}{mark}\n"
        )
    return 0


@daemon_app.command("stop")
def stop(as_json: JsonFlag = False) -> int:
    """Stop every daemon of this user once its current runs end."""
    stopped = [
        path
        for path in daemon_client.daemon_sockets()
        if daemon_client.ask(path, "stop") is not None
    ]
    deadline = time.monotonic() + 30
    while any(os.path.exists(path) for path in stopped) and time.monotonic() < deadline:
        time.sleep(0.02)
    if as_json:
        print_json({"stopped": stopped})
    else:
        sys.stdout.write(f"forgeai daemon: stopped {len(stopped)}\n")
    return 0
