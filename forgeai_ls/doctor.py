"""What this machine gives ForgeAI: ``forgeai doctor``, and the language server's start-up log.

Every fact is found by asking the machine (running bubblewrap, reading the cgroup files, building
the seccomp filter, pinging the engines, resolving the plugins' toolchains, running one real
sandbox), never assumed. ``problems`` lists what is missing or degraded, each with what to do.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel

from forgeai_ls import __version__
from forgeai_ls.errors import ForgeAIError, ToolchainNotFoundError
from forgeai_ls.plugins.manager import PluginManager
from forgeai_ls.sandbox import NativeBackend
from forgeai_ls.sandbox.cgroups import unified_hierarchy
from forgeai_ls.sandbox.engine_info import docker_host, is_podman
from forgeai_ls.sandbox.host import BWRAP_HINT, NativeHost, executable_here, find_bwrap

_PROBE_TIMEOUT = 10.0
_ENGINE_TIMEOUT = 1.0
_APPARMOR_KNOB = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")


class BubblewrapFacts(BaseModel):
    path: str | None
    version: str | None
    setuid: bool
    user_namespaces: bool
    """An unprivileged user could create the namespaces a sandbox needs (bwrap ran)."""
    apparmor_restricts_userns: bool
    error: str | None
    fix: str | None


class CgroupFacts(BaseModel):
    hierarchy: Literal["v1", "v2"]
    how: str
    """Where ForgeAI's per-run groups live (or the hierarchy, when it has none)."""
    controllers: list[str]
    """The controllers ForgeAI uses in them."""
    reason: str | None
    """Why there are none (memory and process limits are then rlimits)."""
    fix: str | None


class SeccompFacts(BaseModel):
    available: bool
    detail: str


class LimitFacts(BaseModel):
    limit: str
    enforced_by: str


class EngineFacts(BaseModel):
    name: Literal["docker", "podman"]
    url: str
    reachable: bool
    detail: str


class ToolchainFacts(BaseModel):
    plugin: str
    language: str
    command: str
    executable: str | None
    error: str | None


class SandboxProbe(BaseModel):
    ran: bool
    language: str | None
    milliseconds: float | None
    error: str | None


class DoctorReport(BaseModel):
    forgeai: str
    kernel: str
    uid: int
    bubblewrap: BubblewrapFacts
    cgroups: CgroupFacts | None
    work_dir: str | None
    """Where runs' files (and compiled programs) live."""
    work_dir_executable: bool
    seccomp: SeccompFacts | None
    limits: list[LimitFacts]
    sandbox: SandboxProbe | None
    engines: list[EngineFacts]
    toolchains: list[ToolchainFacts]
    problems: list[str]
    """Each: what is missing or degraded, and what to do."""


def apparmor_fix(bwrap: str) -> str:
    """Ubuntu 24.04+: let bubblewrap (only it) create user namespaces again."""
    return (
        f"AppArmor forbids unprivileged user namespaces; allow them for {bwrap} only: "
        f"printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile bwrap {bwrap} "
        "flags=(unconfined) {\\n  userns,\\n}\\n' | sudo tee /etc/apparmor.d/bwrap "
        "&& sudo apparmor_parser -r /etc/apparmor.d/bwrap"
    )


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _userns_fix(bwrap: str, apparmor: bool) -> str | None:
    if apparmor:
        return apparmor_fix(bwrap)
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return (
            "unprivileged user namespaces are switched off: "
            "'sudo sysctl -w kernel.unprivileged_userns_clone=1' (and the same line in "
            "/etc/sysctl.d/50-forgeai.conf to keep it)"
        )
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "user namespaces are switched off: 'sudo sysctl -w user.max_user_namespaces=15000'"
    return None


def bubblewrap_facts() -> BubblewrapFacts:
    apparmor = _read(str(_APPARMOR_KNOB)) == "1"
    try:
        bwrap = find_bwrap()
    except ForgeAIError as exc:
        return BubblewrapFacts(
            path=None,
            version=None,
            setuid=False,
            user_namespaces=False,
            apparmor_restricts_userns=apparmor,
            error=exc.message,
            fix=BWRAP_HINT,
        )
    version = _output([bwrap, "--version"]).stdout.strip()
    # As a normal user: what ForgeAI's sandboxes need. As root, ForgeAI starts bwrap as an
    # unprivileged uid, so the probe does too.
    namespaces = ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    probe = _output(
        [bwrap, *namespaces, "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "true"],
        unprivileged=os.geteuid() == 0,
    )
    works = probe.returncode == 0
    return BubblewrapFacts(
        path=bwrap,
        version=version.removeprefix("bubblewrap ") or None,
        setuid=bool(os.stat(bwrap).st_mode & 0o4000),
        user_namespaces=works,
        apparmor_restricts_userns=apparmor,
        error=None if works else (probe.stderr.strip() or f"exit {probe.returncode}"),
        fix=None if works else _userns_fix(bwrap, apparmor),
    )


def _output(argv: list[str], *, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    """``argv``'s exit status and output (as uid/gid 65534 when ``unprivileged``); a program
    that cannot be started is a failure (status 127) with the reason as its stderr."""
    nobody = 65534 if unprivileged else None
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
            user=nobody,
            group=nobody,
            extra_groups=[] if unprivileged else None,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: {exc}")


def cgroup_facts(host: NativeHost) -> CgroupFacts:
    setup = host.cgroup_setup
    manager = setup.manager
    hierarchy: Literal["v1", "v2"] = "v2" if unified_hierarchy() else "v1"
    controllers = []
    if manager is not None:
        controllers = ["memory", "pids"] + (["cpu accounting"] if manager.version == 2 else [])
    return CgroupFacts(
        hierarchy=hierarchy,
        how=setup.how,
        controllers=controllers,
        reason=setup.reason,
        fix=setup.fix,
    )


def limit_facts(host: NativeHost | None) -> list[LimitFacts]:
    manager = host.cgroups if host is not None else None
    per_run_uid = host is not None and host.uid_pool is not None
    if manager is None:
        memory = "RLIMIT_DATA (an allocation fails inside the program; no OOM kill)"
        processes = (
            "RLIMIT_NPROC, with a uid of its own per run"
            if per_run_uid
            else "RLIMIT_NPROC (counts every process of this user, not only the run's)"
        )
        cpu_accounting = "rusage of the run's processes"
    elif manager.version == 1:
        memory = "cgroup v1 memory.limit_in_bytes (+ memsw): OOM kill, counted"
        processes = "cgroup v1 pids.max: refused forks counted in pids.events"
        cpu_accounting = "rusage of the run's processes"
    else:
        memory = "cgroup v2 memory.max, memory.swap.max 0: OOM kill, counted in memory.events"
        processes = "cgroup v2 pids.max: refused forks counted in pids.events"
        cpu_accounting = "cgroup v2 cpu.stat"
    seccomp = host is not None and host.seccomp is not None
    return [
        LimitFacts(limit="memory", enforced_by=memory),
        LimitFacts(limit="processes", enforced_by=processes),
        LimitFacts(limit="cpu time", enforced_by=f"RLIMIT_CPU; measured by {cpu_accounting}"),
        LimitFacts(
            limit="wall clock",
            enforced_by="ForgeAI, and the sandbox supervisor if ForgeAI dies (2 s later)",
        ),
        LimitFacts(limit="output", enforced_by="ForgeAI reads it and stops the run at the cap"),
        LimitFacts(limit="file size", enforced_by="RLIMIT_FSIZE; /tmp and /work are sized tmpfs"),
        LimitFacts(limit="open files", enforced_by="RLIMIT_NOFILE"),
        LimitFacts(
            limit="network",
            enforced_by="a network namespace of its own (loopback only)"
            + ("; socket families by seccomp" if seccomp else ""),
        ),
    ]


def engine_facts() -> list[EngineFacts]:
    docker_url = docker_host()
    if os.geteuid() == 0:
        podman_socket = "/run/podman/podman.sock"
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        podman_socket = f"{runtime}/podman/podman.sock"
    return [_ping("docker", docker_url), _ping("podman", f"unix://{podman_socket}")]


def _ping(name: Literal["docker", "podman"], url: str) -> EngineFacts:
    if url.startswith("unix://"):
        socket_path = url.removeprefix("unix://")
        if not os.path.exists(socket_path):
            return EngineFacts(name=name, url=url, reachable=False, detail="no socket")
        transport = httpx.HTTPTransport(uds=socket_path)
        base = "http://engine"
    elif url.startswith(("tcp://", "http://")):
        transport = httpx.HTTPTransport()
        base = "http://" + url.split("://", 1)[1]
    else:
        return EngineFacts(name=name, url=url, reachable=False, detail="unsupported URL")
    try:
        with httpx.Client(transport=transport, timeout=_ENGINE_TIMEOUT) as client:
            answer = client.get(f"{base}/version")
            answer.raise_for_status()
            found = answer.json()
            kind = "Podman" if is_podman(found) else "Docker"
            version = f"{kind} {found.get('Version', '?')}"
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return EngineFacts(
            name=name, url=url, reachable=False, detail=str(exc) or type(exc).__name__
        )
    return EngineFacts(name=name, url=url, reachable=True, detail=version)


def toolchain_facts(manager: PluginManager) -> list[ToolchainFacts]:
    from forgeai_ls.sandbox.toolchain import ToolchainResolver

    resolver = ToolchainResolver()
    facts = []
    for entry in manager.catalog().entries():
        spec = entry.spec
        commands = [spec.compile[0]] if spec.compile else []
        commands += [spec.run[0]] if spec.run and spec.run[0] not in commands else []
        for command in commands:
            if command.startswith("{"):  # the program itself (a compiled binary)
                continue
            try:
                executable: str | None = resolver.resolve(command).executable
                error = None
            except ForgeAIError as exc:
                executable, error = None, exc.message
            facts.append(
                ToolchainFacts(
                    plugin=entry.plugin,
                    language=spec.name,
                    command=command,
                    executable=executable,
                    error=error,
                )
            )
    return facts


async def probe_sandbox(manager: PluginManager) -> SandboxProbe:
    """Run one tiny program for real (Python, else shell), as every run would."""
    for language, code in (("python", "print(1)"), ("bash", "echo 1")):
        try:
            executor, name = manager.get_executor(language)
        except ForgeAIError:
            continue
        begin = time.perf_counter()
        try:
            result = await executor.language(name).execute(language, code)
        except ToolchainNotFoundError:  # not installed here: try the next
            continue
        except ForgeAIError as exc:
            return SandboxProbe(ran=False, language=language, milliseconds=None, error=exc.message)
        elapsed = (time.perf_counter() - begin) * 1000
        if result.exit_code == 0 and result.stdout.strip() == b"1":
            return SandboxProbe(ran=True, language=language, milliseconds=elapsed, error=None)
        detail = result.stderr.decode(errors="replace").strip()[-300:] or f"exit {result.exit_code}"
        return SandboxProbe(ran=False, language=language, milliseconds=elapsed, error=detail)
    return SandboxProbe(
        ran=False, language=None, milliseconds=None, error="no python or bash toolchain"
    )


def problems_of(report: DoctorReport) -> list[str]:
    found = []
    bubblewrap = report.bubblewrap
    if bubblewrap.path is None:
        found.append(f"no bubblewrap: {bubblewrap.fix}")
    elif not bubblewrap.user_namespaces:
        fix = f"; {bubblewrap.fix}" if bubblewrap.fix else ""
        found.append(f"bubblewrap cannot create user namespaces ({bubblewrap.error}){fix}")
    cgroups = report.cgroups
    if cgroups is not None and cgroups.reason is not None:
        fix = f"; {cgroups.fix}" if cgroups.fix else ""
        found.append(f"memory and process limits are rlimits, not cgroups: {cgroups.reason}{fix}")
    if report.work_dir is not None and not report.work_dir_executable:
        found.append(
            f"the work directory {report.work_dir} is on a noexec filesystem, and so is "
            "/var/tmp: compiled programs cannot run; remount one of them with exec"  # noqa: S108
        )
    if report.seccomp is not None and not report.seccomp.available:
        found.append(f"no seccomp filter: {report.seccomp.detail}")
    if report.sandbox is not None and not report.sandbox.ran:
        found.append(f"a test run in the sandbox failed: {report.sandbox.error}")
    return found


def _host_facts(
    backend: object,
) -> tuple[BubblewrapFacts, NativeHost | None, SeccompFacts | None]:
    bubblewrap = bubblewrap_facts()
    host = None
    if bubblewrap.path is not None and isinstance(backend, NativeBackend):
        try:
            host = backend.host()
        except ForgeAIError:
            host = None
    seccomp = None
    if host is not None:
        seccomp = SeccompFacts(
            available=host.seccomp is not None,
            detail="built with libseccomp: denied system calls and socket families"
            if host.seccomp is not None
            else "libseccomp is not installed ('sudo apt-get install libseccomp2'; "
            "pip package pyseccomp)",
        )
    return bubblewrap, host, seccomp


def _report(
    bubblewrap: BubblewrapFacts,
    host: NativeHost | None,
    seccomp: SeccompFacts | None,
    *,
    sandbox: SandboxProbe | None = None,
    engines: list[EngineFacts] | None = None,
    toolchains: list[ToolchainFacts] | None = None,
) -> DoctorReport:
    report = DoctorReport(
        forgeai=__version__,
        kernel=platform.release(),
        uid=os.geteuid(),
        bubblewrap=bubblewrap,
        cgroups=cgroup_facts(host) if host is not None else None,
        work_dir=str(host.runtime_dir) if host is not None else None,
        work_dir_executable=host is not None and executable_here(host.runtime_dir),
        seccomp=seccomp,
        limits=limit_facts(host),
        sandbox=sandbox,
        engines=engines or [],
        toolchains=toolchains or [],
        problems=[],
    )
    report.problems = problems_of(report)
    return report


def startup_problems(backend: object) -> list[str]:
    """The quick part of the report (no test run, engines or toolchains), for the language
    server's start: what is degraded on this machine, if anything."""
    if not isinstance(backend, NativeBackend):
        return []
    return _report(*_host_facts(backend)).problems


async def diagnose(manager: PluginManager | None = None, *, engines: bool = True) -> DoctorReport:
    """The whole report. ``manager``: the loaded plugins (else the official ones are loaded)."""
    if manager is None:
        manager = PluginManager(NativeBackend())
        manager.load_all()
    bubblewrap, host, seccomp = _host_facts(manager.backend)
    return _report(
        bubblewrap,
        host,
        seccomp,
        sandbox=await probe_sandbox(manager) if host is not None else None,
        engines=engine_facts() if engines else [],
        toolchains=toolchain_facts(manager),
    )
