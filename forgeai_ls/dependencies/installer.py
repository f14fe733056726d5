"""Installing declared dependencies: uv, in a sandbox of its own, into the environment cache.

The install step is a sandboxed run like any other, with limits of its own (``INSTALL_LIMITS``):
no host files but the interpreter, the uv binary (ForgeAI's pinned dependency) and the one
folder being built, which is bound writable at the path the environment will have; network
only to the package index, through the egress proxy. It runs ``uv venv`` with the
interpreter and ``uv pip install`` of the requirements from the index; the resolved set is
read back from the environment's ``.dist-info`` folders into the cache's metadata. uv's
download cache lives in the sandbox's own ``/tmp``: nothing one install builds can reach
another. On failure uv's message is
classified (an unknown package, a conflict, an unreachable index), the folder is removed and
the run does not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from forgeai_ls.dependencies.declared import DeclaredDependencies
from forgeai_ls.dependencies.environment_cache import (
    EnvironmentCache,
    EnvironmentKey,
    EnvironmentRecord,
    folder_size,
)
from forgeai_ls.dependencies.package_index import PackageIndex
from forgeai_ls.errors import (
    DependencyConflictError,
    DependencyInstallError,
    IndexUnreachableError,
    ToolchainNotFoundError,
    UnknownPackageError,
)
from forgeai_ls.project_env import ProjectEnvironment, inspect_python
from forgeai_ls.sandbox import NativeBackend, ResourceLimits, SandboxRequest, StepSpec
from forgeai_ls.sandbox.request import HostMount
from forgeai_ls.sandbox.toolchain import SYSTEM_PREFIXES, toolchain_root

MIB = 1024 * 1024
INSTALL_LIMITS = ResourceLimits(
    wall_timeout=300,
    cpu_time=600,
    memory_bytes=2048 * MIB,
    processes=256,
    output_bytes=4 * MIB,
    file_size_bytes=512 * MIB,
    disk_bytes=2048 * MIB,
    open_files=4096,
)
"""The install step's own limits (its sandbox's /tmp holds uv's downloads)."""
UV_IN_SANDBOX = "/run/forgeai/uv"
_SCRIPT = """set -e
"$1" venv --quiet --python "$2" "$3"
"$1" pip install --quiet --python "$3/bin/python" --index-url "$4" -r /work/requirements.txt
"""
Progress = Callable[[str], None]


_answers: dict[str, str] = {}


def _entry(executable: str) -> str:
    stat = os.stat(executable)
    return f"{executable}|{stat.st_size}|{stat.st_mtime_ns}"


def _asked_once(memo: Path, argv: list[str]) -> str:
    """The output of ``argv`` (a tool saying its version), remembered in ``memo`` for as long
    as the executable is unchanged (same path, size and modification time): a cached run
    starts no process to learn it again."""
    entry = _entry(argv[0])
    if entry in _answers:
        return _answers[entry]
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(entry), str):
        _answers[entry] = str(known[entry])
        return _answers[entry]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    answer = done.stdout.strip()
    if done.returncode != 0 or not answer:
        raise ToolchainNotFoundError(f"{argv[0]} did not say its version: {done.stderr[-200:]}")
    known = known if isinstance(known, dict) else {}
    known[entry] = _answers[entry] = answer
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        scratch = memo.with_name(f"{memo.name}.{os.getpid()}")
        scratch.write_text(json.dumps(known))
        scratch.replace(memo)
    return answer


def _interpreter_version(executable: str, cache: EnvironmentCache) -> str:
    script = "import platform; print(platform.python_version())"
    return _asked_once(cache.root / ".versions.json", [executable, "-I", "-S", "-c", script])


@functools.cache
def uv_binary() -> str:
    """The uv executable of ForgeAI's pinned ``uv`` dependency."""
    try:
        import uv

        found = uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv") or ""
    if not found:
        raise DependencyInstallError(
            "uv, which installs dependencies, is not installed with ForgeAI",
            hint="reinstall ForgeAI (pip install forgeai-ls): uv is one of its dependencies",
        )
    return os.path.realpath(found)


def _uv_version(binary: str, cache: EnvironmentCache) -> str:
    return _asked_once(cache.root / ".versions.json", [binary, "--version"])


async def prepare_environment(
    declared: DeclaredDependencies,
    *,
    backend: NativeBackend,
    cache: EnvironmentCache,
    index: PackageIndex,
    python: str,
    progress: Progress | None = None,
) -> ProjectEnvironment:
    """The cached environment holding ``declared`` for ``python`` (a command name or path),
    installed first when it is not cached yet."""
    resolved = backend.resolver.resolve(python)
    interpreter = resolved.executable
    version = _answers.get(_entry(interpreter)) or ""
    if not version:
        version = await asyncio.to_thread(_interpreter_version, interpreter, cache)
    if declared.requires_python and Version(version) not in SpecifierSet(declared.requires_python):
        raise DependencyConflictError(
            f"the {declared.source} requires Python {declared.requires_python}; "
            f"this Python is {version} ({interpreter})",
            hint="run it with a matching interpreter (--env, or a python3 of that version "
            "first on PATH)",
        )
    uv = uv_binary()
    key = EnvironmentKey(
        requirements=declared.requirements,
        interpreter=interpreter,
        python_version=version,
        index=index.url,
        installer=_answers.get(_entry(uv))
        or await asyncio.to_thread(_uv_version, uv, cache)
        or "uv",
    )
    found_by = f"dependencies of the {declared.source}"
    folder = cache.lookup(key)
    if folder is None:
        folder = await _install(declared, key, backend, cache, index, uv, progress)
    return _inspected(folder, found_by)


_seen: dict[tuple[Path, str], ProjectEnvironment] = {}


def _inspected(folder: Path, found_by: str) -> ProjectEnvironment:
    """The cached environment as a run uses it (worked out once per environment: a cached
    environment never changes under its key)."""
    known = _seen.get((folder, found_by))
    if known is None:
        known = _seen[(folder, found_by)] = inspect_python(folder, found_by)
    return known


async def _install(
    declared: DeclaredDependencies,
    key: EnvironmentKey,
    backend: NativeBackend,
    cache: EnvironmentCache,
    index: PackageIndex,
    uv: str,
    progress: Progress | None,
) -> Path:
    lock = cache.locked(key)
    await asyncio.to_thread(lock.__enter__)
    try:
        folder = cache.lookup(key)  # installed by another process meanwhile
        if folder is not None:
            return folder
        count = len(declared.requirements)
        if progress is not None:
            progress(f"Installing {count} package{'s' * (count != 1)} from {index.display_url}")
        building = cache.building_dir(key)
        try:
            record = await _run_uv(declared, key, backend, index, uv, building, cache)
            return await asyncio.to_thread(cache.commit, building, key, record)
        except BaseException:
            await asyncio.to_thread(cache.discard, building)
            raise
    finally:
        lock.__exit__(None, None, None)


async def _run_uv(
    declared: DeclaredDependencies,
    key: EnvironmentKey,
    backend: NativeBackend,
    index: PackageIndex,
    uv: str,
    building: Path,
    cache: EnvironmentCache,
) -> EnvironmentRecord:
    final = str(cache.path_for(key))
    is_root = os.geteuid() == 0
    if is_root:  # the sandbox runs as a dedicated uid: it must write the folder
        # Reached only through the sandbox's own bind: its parents are root's, mode 0700.
        os.chmod(building, 0o777)  # noqa: S103
    mounts = [
        HostMount(source=uv, target=UV_IN_SANDBOX),
        HostMount(source=os.fspath(building), target=final, writable=True),
    ]
    if not key.interpreter.startswith(SYSTEM_PREFIXES):
        base = toolchain_root(key.interpreter)
        if base is not None:
            mounts.append(HostMount(source=base, target=base))
    request = SandboxRequest(
        files={"requirements.txt": ("\n".join(declared.requirements) + "\n").encode()},
        run=StepSpec(
            argv=("/bin/sh", "-c", _SCRIPT, "sh", UV_IN_SANDBOX, key.interpreter, final, index.url),
            limits=INSTALL_LIMITS,
            env={
                "UV_CACHE_DIR": "/tmp/uv-cache",  # noqa: S108 - the sandbox's own /tmp
                "UV_LINK_MODE": "copy",
                "UV_NO_CONFIG": "1",
                "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1",
            },
        ),
        mounts=tuple(mounts),
        egress=index.egress(),
    )
    result = await backend.run(request)
    stderr = result.stderr.decode(errors="replace")
    if result.exit_code != 0:
        raise _classified(stderr, result.timed_out, index, declared)
    if is_root:
        await asyncio.to_thread(_own, building)
    installed = await asyncio.to_thread(_installed_set, building)
    return EnvironmentRecord(
        requirements=declared.requirements,
        installed=installed,
        interpreter=key.interpreter,
        python_version=key.python_version,
        index=index.display_url,
        size_bytes=await asyncio.to_thread(folder_size, building),
        created=time.time(),
    )


def _installed_set(folder: Path) -> tuple[str, ...]:
    """``name==version`` of every distribution in the environment (its ``.dist-info``
    folders, as ``pip freeze`` lists them)."""
    found = []
    for info in folder.glob("lib/python3*/site-packages/*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        if name and version:
            found.append(f"{canonicalize_name(name)}=={version}")
    return tuple(sorted(found))


def _own(folder: Path) -> None:
    """Root: the environment belongs to root again, readable by every sandbox uid."""
    os.chmod(folder, 0o755)  # noqa: S103 - every sandbox uid reads it (mounted read-only)
    for directory, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            os.lchown(os.path.join(directory, name), 0, 0)
    os.lchown(folder, 0, 0)


_NOT_FOUND = re.compile(
    r"(?:Because|because) (?P<name>[\w.\-\[\]]+) was not found in the package registry"
    r"|No solution found.*?(?P<name2>[\w.\-]+) was not found"
    r"|(?P<name3>[\w.\-]+) was not found in the package registry",
    re.S,
)
_UNREACHABLE = re.compile(
    r"(error sending request|Failed to fetch|Could not connect|Connection refused|"
    r"dns error|tcp connect error|403 Forbidden|502 Bad Gateway)",
    re.I,
)


def _classified(
    stderr: str, timed_out: bool, index: PackageIndex, declared: DeclaredDependencies
) -> DependencyInstallError:
    """uv's failure as one clear error (its key line in the message)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
    detail = re.sub(r"\x1b\[[0-9;]*m", "", detail)[:400]
    if timed_out:
        return DependencyInstallError(
            f"installing {', '.join(declared.requirements)} took longer than "
            f"{INSTALL_LIMITS.wall_timeout:.0f} s",
            hint="try again; large packages may need a closer index",
        )
    found = _NOT_FOUND.search(stderr)
    if found:
        name = found.group("name") or found.group("name2") or found.group("name3")
        return UnknownPackageError(
            f"the package '{name}' is not on the index {index.display_url} ({index.source})",
            hint="check its name on the index; the run did not start",
        )
    if _UNREACHABLE.search(stderr):
        return IndexUnreachableError(
            f"the package index {index.display_url} ({index.source}) cannot be reached: {detail}",
            hint="check the URL and your connection (UV_INDEX_URL, pip.conf or uv.toml)",
        )
    if "No solution found" in stderr or "unsatisfiable" in stderr:
        reason = " ".join(line.lstrip("╰─▶ ") for line in lines[1:4])[:500]
        return DependencyConflictError(
            f"the requirements {', '.join(declared.requirements)} cannot be installed "
            f"together: {reason}",
            hint="loosen the version constraints in the dependency list",
        )
    return DependencyInstallError(
        f"installing {', '.join(declared.requirements)} failed: {detail}",
        hint="the installer's full output is in the language server's log / with --json",
    )
