"""A run's declared dependencies, for the CLI and the language server alike: found, then made
into the environment the run uses (see ``installer``).

A Python program's PEP 723 block is always read; a requirements file or ``pyproject.toml``
beside it only when asked (``--deps``, ``--deps-file FILE``). With dependencies, the run uses the
installed environment instead of the project's (as ``uv run --script`` does): the project
environment, when one was named, gives the interpreter it is built with.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from forgeai_ls.dependencies.declared import (
    DeclaredDependencies,
    dependencies_file,
    script_metadata,
)
from forgeai_ls.dependencies.environment_cache import DEFAULT_CAP_BYTES, EnvironmentCache
from forgeai_ls.dependencies.installer import Progress, prepare_environment
from forgeai_ls.dependencies.package_index import python_index
from forgeai_ls.errors import DependencySpecError
from forgeai_ls.home import forgeai_home
from forgeai_ls.project_env import PYTHON_COMMANDS, ProjectEnvironment
from forgeai_ls.sandbox import NativeBackend

AUTO = "auto"
"""``--deps`` without a file: requirements.txt, else pyproject.toml, beside the program."""


class DependencyReport(BaseModel):
    """What a run's dependencies were and where they came from (in its result)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    requirements: tuple[str, ...]
    installed: tuple[str, ...]
    cached: bool
    """The environment was already in the cache (nothing was installed for this run)."""


def declared_dependencies(
    command: str, code: str, *, file: Path | None, deps: str | None
) -> DeclaredDependencies | None:
    """The dependencies of a run whose step starts with ``command``; None without any."""
    if os.path.basename(command) not in PYTHON_COMMANDS:
        if deps is not None:
            raise DependencySpecError(
                f"--deps: dependencies are installed for Python programs, not {command}",
                hint="declare them in the project (node_modules is used as it is)",
            )
        return None
    where = str(file) if file is not None else "the program"
    if deps is None:
        found = script_metadata(code, where=where)
    elif deps == AUTO:
        if file is None:
            raise DependencySpecError(
                "--deps needs a program file to look beside (or --deps-file FILE)",
                hint="name the file: --deps-file requirements.txt",
            )
        candidates = [file.parent / "requirements.txt", file.parent / "pyproject.toml"]
        chosen = next((path for path in candidates if path.is_file()), None)
        if chosen is None:
            raise DependencySpecError(
                f"--deps: neither requirements.txt nor pyproject.toml is beside {file}",
                hint="name the file: --deps-file path/to/requirements.txt",
            )
        found = dependencies_file(chosen)
    else:
        found = dependencies_file(Path(deps))
    if found is None or not found.requirements:
        return None
    return found


def environment_cache() -> EnvironmentCache:
    """FORGEAI_HOME/cache/envs, capped by FORGEAI_ENV_CACHE_MB (default 2048)."""
    try:
        cap = int(os.environ.get("FORGEAI_ENV_CACHE_MB", "")) * 1024 * 1024
    except ValueError:
        cap = DEFAULT_CAP_BYTES
    return EnvironmentCache(forgeai_home() / "cache" / "envs", cap or DEFAULT_CAP_BYTES)


async def dependency_environment(
    declared: DeclaredDependencies,
    backend: NativeBackend,
    *,
    base: ProjectEnvironment | None = None,
    progress: Progress | None = None,
) -> tuple[ProjectEnvironment, DependencyReport]:
    """The environment holding ``declared`` (installed now when not cached), built with the
    project environment's interpreter when there is one, else ``python3``."""
    cache = environment_cache()
    installing: list[str] = []

    def said(text: str) -> None:
        installing.append(text)
        if progress is not None:
            progress(text)

    python = "python3"
    if base is not None and base.interpreter is not None:
        python = os.path.realpath(base.interpreter)
    environment = await prepare_environment(
        declared,
        backend=backend,
        cache=cache,
        index=python_index(),
        python=python,
        progress=said,
    )
    record = cache.record(Path(environment.path))
    report = DependencyReport(
        source=declared.source,
        requirements=declared.requirements,
        installed=record.installed if record is not None else (),
        cached=not installing,
    )
    return environment, report
