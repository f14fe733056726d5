"""A cgroup subtree of ForgeAI's own, delegated by systemd (cgroup v2).

On a systemd machine only systemd may create cgroups, except inside a subtree it delegated.
ForgeAI asks the systemd manager it belongs to — the user's own manager for a normal user,
PID 1 for root — over D-Bus for a transient scope with ``Delegate=yes`` holding this process,
as Podman does for itself (``StartTransientUnit``). systemd then moves the process into the
scope and hands the scope's cgroup to the user; ForgeAI moves itself one level down (a cgroup
v2 group with processes cannot have child groups with controllers) and creates one group per
run beside it. systemd removes the scope when its last process is gone.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import MessageType

SCOPE_PREFIX = "forgeai-"
LEAF = "forgeai"
"""The group ForgeAI's own processes move to, inside the scope."""
_CALL_TIMEOUT = 5.0
_MOVE_TIMEOUT = 5.0

_MANAGER = DBusAddress(
    "/org/freedesktop/systemd1",
    bus_name="org.freedesktop.systemd1",
    interface="org.freedesktop.systemd1.Manager",
)


class ScopeUnavailable(Exception):
    """No systemd manager gave ForgeAI a scope; the message says why."""


@dataclass(frozen=True, slots=True)
class DelegatedScope:
    unit: str
    """The scope's unit name, e.g. ``forgeai-4242-1a2b3c4d.scope``."""
    path: str
    """Its cgroup, relative to the cgroup v2 mount (``/user.slice/…/forgeai-….scope``)."""
    manager: str
    """``user`` (the user's systemd manager) or ``system`` (PID 1)."""


def bus_address() -> str | None:
    """The bus of the systemd manager this process belongs to, or ``None`` when there is none."""
    if os.geteuid() == 0:
        configured = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        if configured:
            return configured
        path = Path("/run/dbus/system_bus_socket")
        return f"unix:path={path}" if path.exists() else None
    configured = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if configured:
        return configured
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    path = Path(runtime) / "bus"
    return f"unix:path={path}" if path.exists() else None


def own_cgroup() -> str | None:
    """This process's group in the cgroup v2 hierarchy (the ``0::`` line)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:]
    return None


def start_delegated_scope(pids: list[int]) -> DelegatedScope:
    """Have systemd put ``pids`` (this process first) into a new scope delegated to us."""
    manager = "system" if os.geteuid() == 0 else "user"
    address = bus_address()
    if address is None:
        where = "no system bus" if manager == "system" else "no D-Bus session bus of this user"
        raise ScopeUnavailable(f"{where} (no systemd {manager} manager reachable)")
    unit = f"{SCOPE_PREFIX}{pids[0]}-{secrets.token_hex(4)}.scope"
    properties = [
        ("Description", ("s", "ForgeAI sandboxes")),
        ("PIDs", ("au", pids)),
        ("Delegate", ("b", True)),
        ("CollectMode", ("s", "inactive-or-failed")),
    ]
    message = new_method_call(
        _MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))", (unit, "fail", properties, [])
    )
    try:
        with open_dbus_connection(bus=address, auth_timeout=_CALL_TIMEOUT) as connection:
            reply = connection.send_and_get_reply(message, timeout=_CALL_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ScopeUnavailable(f"the {manager} bus at {address} did not answer: {exc}") from exc
    if reply.header.message_type == MessageType.error:
        body = reply.body[0] if reply.body else "no reason given"
        raise ScopeUnavailable(f"the systemd {manager} manager refused a scope: {body}")
    deadline = time.monotonic() + _MOVE_TIMEOUT
    while time.monotonic() < deadline:
        path = own_cgroup()
        if path is not None and path.rsplit("/", 1)[-1] == unit:
            return DelegatedScope(unit=unit, path=path, manager=manager)
        time.sleep(0.002)
    raise ScopeUnavailable(f"systemd did not move ForgeAI into {unit} in {_MOVE_TIMEOUT:.0f} s")
