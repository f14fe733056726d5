"""FORGEAI_HOME/plugins, changed only atomically and under a lock.

Layout::

    plugins/
      NAME -> .store/ID/NAME          one symbolic link per installed plugin (the live set)
      .store/ID/NAME/...              an installed version's files, never changed in place
      .store/ID/origin.json           where it came from (registry, sha256, signer, time)
      .staging/ID/                    an install in progress
      .lock                           flock(2): one lifecycle command at a time

Installing writes the new version under ``.staging``, verifies it there, moves it into
``.store`` and then replaces the link with ``rename(2)``, which is atomic: a reader (or a
crash) sees the old version or the new one, never a mix. The old version's directory is the
backup until the new one is validated; rolling back is another link swap. Anything a crash
leaves behind (staging folders, temporary links, store directories no link points to) is
swept by :meth:`PluginStore.repair`, which every lifecycle command runs first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from forgeai_ls.errors import InstallError, LockTimeoutError
from forgeai_ls.plugins.archive import ArchiveContents, write_contents

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_checkpoint_hook: Callable[[str], None] | None = None


def set_checkpoint_hook(hook: Callable[[str], None] | None) -> None:
    """Call ``hook(step)`` at every lifecycle step (crash-injection tests kill the process)."""
    global _checkpoint_hook
    _checkpoint_hook = hook


def checkpoint(step: str) -> None:
    if _checkpoint_hook is not None:
        _checkpoint_hook(step)


class Origin(BaseModel):
    """Where an installed version came from."""

    model_config = ConfigDict(frozen=True)

    kind: str
    """``registry``, ``archive`` or ``folder``."""
    location: str
    """The registry URL, archive path or folder path."""
    name: str
    version: str
    sha256: str | None = None
    key_id: str | None = None
    installed_at: float


@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    name: str
    path: Path
    """The version's folder (the link's target)."""
    store_id: str
    origin: Origin | None


@dataclass(frozen=True, slots=True)
class StagedPlugin:
    store_id: str
    path: Path


class PluginStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / ".store"
        self.staging = root / ".staging"
        self.lock_path = root / ".lock"

    # -- locking ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(
        self, timeout: float = 120.0, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Hold the plugin lock; released by the kernel even if this process is killed."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + timeout
            waited = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waited and on_wait is not None:
                        on_wait()
                    waited = True
                    if time.monotonic() > deadline:
                        raise LockTimeoutError(
                            f"another forgeai command has held {self.lock_path} for over "
                            f"{timeout:.0f} s",
                            hint="wait for it to finish; the lock is released when it exits",
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    # -- reading ----------------------------------------------------------------------------

    def installed(self) -> dict[str, InstalledPlugin]:
        """The live set: every link in the plugins folder that points into the store."""
        found: dict[str, InstalledPlugin] = {}
        if not self.root.is_dir():
            return found
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_symlink():
                continue
            target = Path(os.readlink(entry))
            store_id = self._store_id_of(target, entry.name)
            if store_id is None or not (self.store / store_id / entry.name).is_dir():
                continue
            found[entry.name] = InstalledPlugin(
                name=entry.name,
                path=self.store / store_id / entry.name,
                store_id=store_id,
                origin=self._origin(store_id),
            )
        return found

    def unmanaged(self, name: str) -> bool:
        """A real folder (not a link) the user put in the plugins folder by hand."""
        path = self.root / name
        return path.exists() and not path.is_symlink()

    def _store_id_of(self, target: Path, name: str) -> str | None:
        parts = target.parts
        if len(parts) == 3 and parts[0] == ".store" and parts[2] == name:
            return parts[1]
        return None

    def _origin(self, store_id: str) -> Origin | None:
        try:
            return Origin.model_validate_json((self.store / store_id / "origin.json").read_text())
        except (OSError, ValueError):
            return None

    # -- changing (call these holding the lock) ---------------------------------------------

    def stage(self, contents: ArchiveContents, origin: Origin) -> StagedPlugin:
        """Write a version's files under .staging (nothing live changes)."""
        if not _NAME.fullmatch(origin.name):
            raise InstallError(f"'{origin.name}' is not a valid plugin name")
        store_id = f"{origin.name}@{origin.version}-{uuid.uuid4().hex[:12]}"
        folder = self.staging / store_id
        folder.mkdir(parents=True)
        write_contents(contents, folder / origin.name)
        _write_synced(folder / "origin.json", origin.model_dump_json(indent=2).encode())
        _fsync_dir(folder)
        return StagedPlugin(store_id=store_id, path=folder / origin.name)

    def commit(self, staged: StagedPlugin, name: str) -> InstalledPlugin | None:
        """Make the staged version live; returns the previous version (now the backup)."""
        previous = self.installed().get(name)
        self.store.mkdir(exist_ok=True)
        os.rename(self.staging / staged.store_id, self.store / staged.store_id)
        _fsync_dir(self.store)
        checkpoint("moved-to-store")
        self._point(name, staged.store_id)
        return previous

    def _point(self, name: str, store_id: str) -> None:
        """Atomically make plugins/NAME a link to the store entry ``store_id``."""
        temporary = self.root / f".{name}.{uuid.uuid4().hex[:8]}.link"
        os.symlink(Path(".store") / store_id / name, temporary)
        os.rename(temporary, self.root / name)
        _fsync_dir(self.root)

    def restore(self, name: str, previous: InstalledPlugin | None) -> None:
        """Roll back: the link points at the previous version again (or goes away)."""
        if previous is not None:
            self._point(name, previous.store_id)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / name)
            _fsync_dir(self.root)

    def unlink(self, name: str) -> InstalledPlugin:
        """Unregister: the plugin disappears from the live set in one step."""
        current = self.installed().get(name)
        if current is None:
            raise InstallError(f"plugin '{name}' is not installed from a registry or archive")
        os.unlink(self.root / name)
        _fsync_dir(self.root)
        return current

    def discard(self, store_id: str) -> None:
        """Delete a store entry no link points to (a backup, or a failed new version)."""
        for base in (self.store, self.staging):
            path = base / store_id
            if path.exists():
                # Rename first so that a crash mid-delete leaves an obviously dead name.
                dead = base / f".dead-{store_id}"
                os.rename(path, dead)
                shutil.rmtree(dead)

    def repair(self) -> list[str]:
        """Sweep what an interrupted command left; returns what was done, for the user."""
        done: list[str] = []
        if not self.root.is_dir():
            return done
        if self.staging.is_dir():
            for entry in self.staging.iterdir():
                shutil.rmtree(entry, ignore_errors=True)
                done.append(f"removed an unfinished install ({entry.name})")
        for entry in self.root.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(".link"):
                entry.unlink(missing_ok=True)
            elif entry.is_symlink() and not entry.exists():
                entry.unlink()
                done.append(f"removed the broken link {entry.name}")
        live = {plugin.store_id for plugin in self.installed().values()}
        if self.store.is_dir():
            for entry in self.store.iterdir():
                if entry.name.startswith(".dead-"):
                    shutil.rmtree(entry, ignore_errors=True)
                elif entry.name not in live:
                    shutil.rmtree(entry, ignore_errors=True)
                    done.append(f"removed an unused version ({entry.name})")
        return done


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
