"""The project's own environment: which virtualenv or ``node_modules`` a run of a file uses.

A Python file inside a project runs with that project's interpreter environment, read-only:
the environment named explicitly (``--env``, the editor's setting), else the interpreter the
editor selected when it belongs to an environment, else ``$VIRTUAL_ENV``, else the nearest
``.venv`` or ``venv`` folder from the file's directory up. A JavaScript file gets the
nearest ``node_modules`` from its directory up, mounted as ``/node_modules``: above both the
work and the build folder, where ``require`` and ``import`` look last.

Only what the environment needs is mounted, read-only: the environment's folder, the
installation its interpreter comes from (resolved like any toolchain) and, for editable
installs, the source folders its ``.pth`` files name inside the project. Never the project
folder itself, a home directory or a tree that also holds other data: such an environment is
refused with a clear error when named explicitly, and skipped when merely found.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from forgeai_ls.errors import ProjectEnvironmentError
from forgeai_ls.sandbox.request import HostMount
from forgeai_ls.sandbox.toolchain import SYSTEM_PREFIXES, holds_other_data, toolchain_root

PYTHON_COMMANDS = frozenset({"python", "python3"})
"""A run step starting with one of these runs in the project's Python environment."""
NODE_COMMANDS = frozenset({"node"})
"""A run step starting with one of these sees the project's ``node_modules``."""
VENV_NAMES = (".venv", "venv")
NODE_MODULES_TARGET = "/node_modules"
_INTERPRETER_NAME = re.compile(r"python(3(\.\d+)?)?")
_MAX_PTH_FILES = 64
_MAX_PTH_BYTES = 64 * 1024

EnvironmentKind = Literal["python-venv", "python-prefix", "node-modules"]


class ProjectEnvironment(BaseModel):
    """The environment a run used, as reported in its result (``--json``: these names; the
    language server: camelCase) and the editor's output."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    kind: EnvironmentKind
    path: str
    """The environment's folder on this machine (a virtualenv, a prefix, ``node_modules``)."""
    found_by: str
    """How it was chosen: "--env", "$VIRTUAL_ENV", "nearest .venv" (from the file's folder
    up), an editor setting..."""
    interpreter: str | None = None
    """Python: the interpreter the run starts (inside the environment, as on this machine)."""
    version: str | None = None
    """Python: the version the environment records."""
    mounts: tuple[HostMount, ...] = ()
    """What is bound read-only into the sandbox, and where."""
    not_mounted: tuple[str, ...] = ()
    """Paths the environment names that stay out of the sandbox, each with the reason."""


@dataclass(frozen=True, slots=True)
class EnvironmentChoice:
    """What decides a run's environment (CLI options, editor settings)."""

    start: Path | None
    """Where the search starts: the program file's folder (or the working directory)."""
    explicit: str | None = None
    """A virtualenv folder, a Python prefix, an interpreter, or a ``node_modules`` folder."""
    explicit_by: str = "--env"
    editor_interpreter: str | None = None
    """The interpreter the editor selected (VS Code's Python extension): used when it belongs
    to a usable environment, else the search goes on (a system interpreter has none)."""
    enabled: bool = True
    environ: Mapping[str, str] | None = None
    """Where ``$VIRTUAL_ENV`` is read (the user's environment)."""
    stop_at: Path | None = None
    """The search does not go above this folder (an editor's workspace folder)."""


def project_environment(command: str, choice: EnvironmentChoice) -> ProjectEnvironment | None:
    """The environment for a run step whose first word is ``command`` (``python3``,
    ``node``...), or ``None``. An explicit choice that cannot be used raises
    ``ProjectEnvironmentError``; one merely found that cannot be used is skipped."""
    if not choice.enabled:
        return None
    name = os.path.basename(command)
    if name in PYTHON_COMMANDS:
        return _python_environment(choice)
    if name in NODE_COMMANDS:
        return _node_environment(choice)
    if choice.explicit is not None:
        raise ProjectEnvironmentError(
            f"{choice.explicit_by} {choice.explicit}: this language ({name}) has no project "
            "environment",
            hint="project environments are for Python (a virtualenv) and JavaScript "
            "(node_modules); drop the option for this run",
        )
    return None


# -- Python --------------------------------------------------------------------------------


def _python_environment(choice: EnvironmentChoice) -> ProjectEnvironment | None:
    if choice.explicit is not None:
        return _python_at(Path(choice.explicit).expanduser(), choice.explicit_by, strict=True)
    if choice.editor_interpreter:
        found = _python_at(
            Path(choice.editor_interpreter), "the editor's interpreter", strict=False
        )
        if found is not None:
            return found
    environ = os.environ if choice.environ is None else choice.environ
    active = environ.get("VIRTUAL_ENV")
    if active:
        found = _python_at(Path(active), "$VIRTUAL_ENV", strict=False)
        if found is not None:
            return found
    for folder in _upwards(choice.start, choice.stop_at):
        for name in VENV_NAMES:
            candidate = folder / name
            if (candidate / "pyvenv.cfg").is_file():
                found = _python_at(candidate, f"nearest {name}", strict=False)
                if found is not None:
                    return found
    return None


def _python_at(given: Path, found_by: str, *, strict: bool) -> ProjectEnvironment | None:
    try:
        return inspect_python(given.absolute(), found_by)
    except ProjectEnvironmentError:
        if strict:
            raise
        return None


def inspect_python(given: Path, found_by: str) -> ProjectEnvironment:
    """A virtualenv folder, a Python prefix (conda, a standalone build), or an interpreter
    inside one of them."""
    what = f"{found_by} {given}"
    if given.is_file():
        if given.parent.name != "bin":
            raise ProjectEnvironmentError(
                f"{what}: an interpreter outside a bin/ folder is not an environment",
                hint="name the virtualenv's folder (the one holding pyvenv.cfg)",
            )
        folder, interpreter = given.parent.parent, given
    elif given.is_dir():
        folder = given
        interpreter = next(
            (
                folder / "bin" / name
                for name in ("python3", "python")
                if (folder / "bin" / name).exists()
            ),
            folder / "bin" / "python3",
        )
    else:
        raise ProjectEnvironmentError(
            f"{what}: no such file or folder", hint="give a virtualenv's folder or its interpreter"
        )
    real_folder = Path(os.path.realpath(folder))
    venv_config = folder / "pyvenv.cfg"
    is_venv = venv_config.is_file()
    if not is_venv and not any((real_folder / "lib").glob("python3*/os.py")):
        raise ProjectEnvironmentError(
            f"{what}: not a Python environment (no pyvenv.cfg, no lib/python3.*/)",
            hint="give a virtualenv's folder (python -m venv, uv venv) or a Python prefix",
        )
    if holds_other_data(real_folder) or str(real_folder).startswith(SYSTEM_PREFIXES):
        raise ProjectEnvironmentError(
            f"{what}: {real_folder} holds more than one environment (a home directory, a "
            "system tree or a folder shared by many programs); it is not mounted",
            hint="use a virtualenv of its own, e.g. python -m venv .venv",
        )
    real_interpreter = os.path.realpath(interpreter)
    if (
        not os.path.isfile(real_interpreter)
        or not os.access(real_interpreter, os.X_OK)
        or not _INTERPRETER_NAME.fullmatch(os.path.basename(real_interpreter))
    ):
        raise ProjectEnvironmentError(
            f"{what}: {interpreter} does not lead to a Python interpreter ({real_interpreter})",
            hint="recreate the environment (its base interpreter may have been removed)",
        )
    mounts = [HostMount(source=str(real_folder), target=str(folder))]
    if not real_interpreter.startswith((str(real_folder) + "/", *SYSTEM_PREFIXES)):
        base = toolchain_root(real_interpreter)
        if base is not None:
            mounts.append(HostMount(source=base, target=base))
    editable, skipped = _editable_paths(real_folder, project=folder.parent)
    mounts += [HostMount(source=path, target=path) for path in editable]
    version = _venv_version(venv_config) if is_venv else None
    return ProjectEnvironment(
        kind="python-venv" if is_venv else "python-prefix",
        path=str(folder),
        found_by=found_by,
        interpreter=str(interpreter),
        version=version,
        mounts=tuple(mounts),
        not_mounted=tuple(skipped),
    )


def _venv_version(config: Path) -> str | None:
    try:
        text = config.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    return None


def _editable_paths(folder: Path, *, project: Path) -> tuple[list[str], list[str]]:
    """Folders the environment's ``.pth`` files put on ``sys.path`` from outside it (editable
    installs): those inside ``project`` (not the project folder itself), and what is not."""
    mounted: list[str] = []
    skipped: list[str] = []
    real_project = Path(os.path.realpath(project))
    pth_files = sorted(folder.glob("lib/python3*/site-packages/*.pth"))[:_MAX_PTH_FILES]
    for pth in pth_files:
        try:
            with pth.open("rb") as handle:
                text = handle.read(_MAX_PTH_BYTES).decode(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            entry = line.strip()
            if (
                not entry
                or entry.startswith(("#", "import ", "import\t"))
                or not os.path.isabs(entry)
            ):
                continue
            real = Path(os.path.realpath(entry))
            if not real.is_dir() or real == folder or folder in real.parents:
                continue
            if real == real_project:
                skipped.append(f"{entry}: the project folder itself is never mounted")
            elif real_project not in real.parents:
                skipped.append(f"{entry}: outside the project ({project})")
            elif holds_other_data(real):
                skipped.append(f"{entry}: holds other data")
            elif str(real) not in mounted:
                mounted.append(str(real))
    return mounted, skipped


# -- JavaScript ----------------------------------------------------------------------------


def _node_environment(choice: EnvironmentChoice) -> ProjectEnvironment | None:
    if choice.explicit is not None:
        given = Path(choice.explicit).expanduser().absolute()
        folder = given if given.name == "node_modules" else given / "node_modules"
        found = _node_at(folder, choice.explicit_by)
        if found is None:
            raise ProjectEnvironmentError(
                f"{choice.explicit_by} {choice.explicit}: no usable node_modules folder there",
                hint="name a node_modules folder, or the project folder holding it",
            )
        return found
    for folder in _upwards(choice.start, choice.stop_at):
        found = _node_at(folder / "node_modules", "nearest node_modules")
        if found is not None:
            return found
    return None


def _node_at(folder: Path, found_by: str) -> ProjectEnvironment | None:
    if not folder.is_dir():
        return None
    real = Path(os.path.realpath(folder))
    if holds_other_data(real) or str(real).startswith(SYSTEM_PREFIXES):
        return None
    return ProjectEnvironment(
        kind="node-modules",
        path=str(folder),
        found_by=found_by,
        mounts=(HostMount(source=str(real), target=NODE_MODULES_TARGET),),
    )


def _upwards(start: Path | None, stop_at: Path | None) -> list[Path]:
    """``start`` and its parents, up to ``stop_at`` (when ``start`` is inside it) or the root."""
    if start is None:
        return []
    start = start.absolute()
    folders = [start, *start.parents]
    if stop_at is not None:
        stop = stop_at.absolute()
        if stop == start or stop in start.parents:
            folders = folders[: folders.index(stop) + 1]
    return folders
