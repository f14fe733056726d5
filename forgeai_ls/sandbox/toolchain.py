"""Find the real interpreter or compiler behind a command name, and what must be mounted for it.

Version managers put proxies on PATH: pyenv's shims are shell scripts that pick a version at
run time, rustup's ``rustc`` is the rustup binary itself. Neither works inside the sandbox (no
manager state, no home directory), so a command is resolved on the host to the real executable,
and the installation prefix it lives in (its *toolchain root*) is mounted read-only at the same
path — never a tree that also holds other data (a home directory, ``~/.local``): then only the
executable itself is mounted.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from forgeai_ls.errors import ToolchainNotFoundError

SYSTEM_PREFIXES: tuple[str, ...] = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/lib32/")
"""Trees mounted read-only in every sandbox; tools found here need no extra mount."""

_MANAGER_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class ResolvedCommand:
    name: str
    executable: str
    """Absolute real path of the executable (symlinks resolved)."""
    toolchain_root: str | None
    """A host directory to mount read-only at the same path, or ``None`` for system tools."""


def _is_pyenv_shim(path: str) -> bool:
    return Path(path).parent.name == "shims" and (Path(path).parent.parent / "libexec").is_dir()


def _ask_manager(argv: list[str], env: dict[str, str]) -> str | None:
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=_MANAGER_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = completed.stdout.strip()
    if completed.returncode != 0 or not answer or not os.path.isabs(answer):
        return None
    return answer


def _pyenv_versions(pyenv_root: Path, env: dict[str, str]) -> list[str]:
    """pyenv's own choice, without running it: PYENV_VERSION, then the nearest
    .python-version from the working directory up, then the global version file."""
    if env.get("PYENV_VERSION"):
        return env["PYENV_VERSION"].split(":")
    directory = Path(env.get("PWD") or os.getcwd())
    for candidate in (directory, *directory.parents):
        local = candidate / ".python-version"
        if local.is_file():
            return local.read_text().split()
    global_file = pyenv_root / "version"
    return global_file.read_text().split() if global_file.is_file() else ["system"]


def _pyenv_direct(found: str, name: str, env: dict[str, str]) -> str | None:
    pyenv_root = Path(found).parent.parent
    try:
        versions = _pyenv_versions(pyenv_root, env)
    except OSError:
        return None
    for version in versions:
        if version == "system":
            return None  # let 'pyenv which' search the rest of PATH
        candidate = pyenv_root / "versions" / version / "bin" / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _through_version_manager(found: str, name: str, env: dict[str, str]) -> str:
    """Follow pyenv and rustup proxies to the executable they would run."""
    if _is_pyenv_shim(found):
        direct = _pyenv_direct(found, name, env)
        if direct is not None:
            return direct
        pyenv_root = str(Path(found).parent.parent)
        pyenv = shutil.which("pyenv", path=f"{pyenv_root}/bin:{env.get('PATH', '')}")
        if pyenv:
            real = _ask_manager([pyenv, "which", name], {**env, "PYENV_ROOT": pyenv_root})
            if real:
                return real
    target = os.path.realpath(found)
    if Path(target).name in ("rustup", "rustup-init"):
        real = _ask_manager([target, "which", name], env)
        if real:
            return real
    return found


_TOO_BROAD = frozenset(
    {"/", "/home", "/root", "/opt", "/etc", "/var", "/tmp", "/run", "/srv", "/mnt", "/usr/local"}
)
_SHARED_PREFIX_NAMES = frozenset({".local", ".config", ".cache", ".var"})
"""Per-user trees that hold many programs' data (``~/.local/share/keyrings``, an editor's
history in ``~/.local/state``) besides the odd executable in ``~/.local/bin``."""
_SHARED_PREFIX_PAIRS = frozenset({(".local", "share"), (".local", "state"), (".local", "lib")})
_USER_DATA_MARKERS = (
    "share/keyrings",
    "state/nvim",
    "share/nvim",
    "share/recently-used.xbel",
    ".ssh",
    ".gnupg",
    ".bash_history",
)
"""Found in a would-be toolchain prefix, these mean it holds a user's data."""


_HOMES_SECONDS = 60.0
_homes_seen: tuple[float, frozenset[Path]] = (-_HOMES_SECONDS, frozenset())


def _homes() -> frozenset[Path]:
    """This user's home ($HOME, as it is now) and every user's in the password database
    (read at most once a minute)."""
    global _homes_seen
    now = time.monotonic()
    if now - _homes_seen[0] >= _HOMES_SECONDS:
        found: set[Path] = set()
        with contextlib.suppress(KeyError, OSError):
            found.update(Path(entry.pw_dir) for entry in pwd.getpwall() if entry.pw_dir)
        _homes_seen = (now, frozenset(found))
    return _homes_seen[1] | {Path.home()}


def holds_other_data(root: Path) -> bool:
    """Whether ``root`` is more than one toolchain's installation: a top-level tree, a home
    directory (anyone's) or one of its ancestors, a per-user tree shared by many programs
    (``~/.local``, ``~/.config``...), or a directory with a user's data in it."""
    if str(root) in _TOO_BROAD or len(root.parts) <= 2:
        return True
    for home in _homes():
        if root == home or root in home.parents:
            return True
    if root.name in _SHARED_PREFIX_NAMES or (root.parent.name, root.name) in _SHARED_PREFIX_PAIRS:
        return True
    return any(os.path.lexists(root / marker) for marker in _USER_DATA_MARKERS)


def toolchain_root(executable: str) -> str | None:
    """What to mount for ``executable``: nothing (a system tool), its installation prefix
    (``<prefix>/bin/<tool>`` — a pyenv version, a rustup toolchain, ``/opt/<tool>``), or, when
    that prefix also holds other data (``~/.local/bin/<tool>``), the executable alone."""
    if executable.startswith(SYSTEM_PREFIXES):
        return None
    parent = Path(executable).parent
    root = parent.parent if parent.name == "bin" else parent
    if holds_other_data(root):
        return executable
    return str(root)


class ToolchainResolver:
    """Resolves command names against the invoking user's PATH, caching the answers."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self._env = dict(os.environ if environ is None else environ)
        self._cache: dict[str, ResolvedCommand] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str) -> ResolvedCommand:
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None:
            return cached
        resolved = self._resolve_uncached(name)
        with self._lock:
            self._cache[name] = resolved
        return resolved

    def _resolve_uncached(self, name: str) -> ResolvedCommand:
        if os.path.isabs(name):
            found = name if os.access(name, os.X_OK) and os.path.isfile(name) else None
        else:
            found = shutil.which(name, path=self._env.get("PATH", os.defpath))
        if found is None:
            raise ToolchainNotFoundError(
                f"'{name}' was not found on PATH",
                hint=f"install {name} (e.g. with your system's package manager) or add it to PATH",
            )
        real = os.path.realpath(_through_version_manager(found, name, self._env))
        return ResolvedCommand(name=name, executable=real, toolchain_root=toolchain_root(real))
