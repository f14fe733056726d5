"""Saving a run's artifacts (files out) to a folder: for the CLI (``--out``) and the language
server (its artifact store) alike.

Nothing is followed or overwritten by accident: folders are created one level at a time
without following links, files are created exclusively (``--force`` replaces a regular file,
never a link), and names were checked when the artifacts were read (``sandbox.artifacts``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from forgeai_ls.errors import ArtifactOutputError
from forgeai_ls.sandbox.artifacts import Artifact, Artifacts, safe_name


class SavedArtifact(BaseModel):
    """An artifact as reported: where it was saved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    size: int
    mime: str
    path: str


def new_run_name() -> str:
    """A folder name for one run's files: sortable by time, unique."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def check_output_dir(directory: Path, *, force: bool) -> None:
    """Before a run: ``--out DIR`` must not hold files unless ``--force``."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise ArtifactOutputError(
            f"--out {directory}: not a folder", hint="name a folder (it is created if missing)"
        )
    if not force and directory.is_dir() and any(directory.iterdir()):
        raise ArtifactOutputError(
            f"--out {directory}: the folder is not empty; files there are never overwritten",
            hint="name an empty or new folder, or add --force to replace files of the same name",
        )


def save_artifacts(
    artifacts: Artifacts, directory: Path, *, force: bool = False
) -> list[SavedArtifact]:
    """Write every artifact under ``directory`` (created if missing)."""
    if not artifacts.files:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    root = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    saved = []
    try:
        for artifact in artifacts.files:
            saved.append(_save_one(root, directory, artifact, force))
    finally:
        os.close(root)
    return saved


def _save_one(root: int, directory: Path, artifact: Artifact, force: bool) -> SavedArtifact:
    if not safe_name(artifact.name):
        raise ArtifactOutputError(f"artifact name {artifact.name!r} is not a safe relative name")
    *folders, leaf = artifact.name.split("/")
    parent = os.dup(root)
    try:
        for folder in folders:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o755, dir_fd=parent)
            child = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            os.close(parent)
            parent = child
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        flags |= os.O_TRUNC if force else os.O_EXCL
        try:
            fd = os.open(leaf, flags, 0o644, dir_fd=parent)
        except FileExistsError:
            raise ArtifactOutputError(
                f"{directory / artifact.name} exists; files are never overwritten",
                hint="use another --out folder, or --force",
            ) from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(artifact.data)
    except OSError as exc:
        raise ArtifactOutputError(
            f"{directory / artifact.name} cannot be written ({exc.strerror})",
            hint="check the --out folder (a link or a file where a folder should be?)",
        ) from None
    finally:
        os.close(parent)
    return SavedArtifact(
        name=artifact.name,
        size=artifact.size,
        mime=artifact.mime,
        path=str(directory / artifact.name),
    )


def prune_runs(store: Path, *, keep_runs: int, max_bytes: int) -> None:
    """Keep the newest ``keep_runs`` run folders of ``store`` within ``max_bytes``."""
    if not store.is_dir():
        return
    runs = sorted((p for p in store.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    total = 0
    for index, run in enumerate(runs):
        size = sum(f.stat().st_size for f in run.rglob("*") if f.is_file() and not f.is_symlink())
        total += size
        if index >= keep_runs or total > max_bytes:
            shutil.rmtree(run, ignore_errors=True)
