"""Which project environment a run uses, and what of it is mounted (no sandbox needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from forgeai_ls.errors import ProjectEnvironmentError
from forgeai_ls.project_env import (
    NODE_MODULES_TARGET,
    EnvironmentChoice,
    ProjectEnvironment,
    project_environment,
)
from forgeai_ls.sandbox.request import HostMount


def make_venv(path: Path) -> Path:
    """A real virtualenv (``python -m venv``, no pip: fast)."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120
    )
    return path


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def python_env(start: Path | None, **fields: object) -> ProjectEnvironment | None:
    return project_environment("python3", EnvironmentChoice(start=start, environ={}, **fields))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    make_venv(root / ".venv")
    (root / "src" / "pkg").mkdir(parents=True)
    return root


def test_the_nearest_venv_from_the_files_folder_up(project: Path) -> None:
    deep = project / "scripts" / "tools"
    deep.mkdir(parents=True, exist_ok=True)
    found = python_env(deep)
    assert found is not None
    assert (found.kind, found.path, found.found_by) == (
        "python-venv",
        str(project / ".venv"),
        "nearest .venv",
    )
    assert found.interpreter == str(project / ".venv" / "bin" / "python3")
    assert found.version == f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
    base = Path(os.path.realpath(found.interpreter)).parent.parent
    assert HostMount(source=str(project / ".venv"), target=str(project / ".venv")) in found.mounts
    if not str(base).startswith("/usr"):
        assert HostMount(source=str(base), target=str(base)) in found.mounts


def test_the_search_stops_at_the_workspace_folder(project: Path) -> None:
    inner = project / "inner"
    inner.mkdir(exist_ok=True)
    assert python_env(inner, stop_at=inner) is None
    assert python_env(inner, stop_at=project) is not None


def test_virtual_env_wins_over_the_search_and_explicit_wins_over_both(
    project: Path, tmp_path: Path
) -> None:
    other = make_venv(tmp_path / "other")
    choice = EnvironmentChoice(start=project, environ={"VIRTUAL_ENV": str(other)})
    found = project_environment("python3", choice)
    assert found is not None and (found.path, found.found_by) == (str(other), "$VIRTUAL_ENV")
    explicit = EnvironmentChoice(
        start=project, environ={"VIRTUAL_ENV": str(other)}, explicit=str(project / ".venv")
    )
    found = project_environment("python3", explicit)
    assert found is not None and (found.path, found.found_by) == (str(project / ".venv"), "--env")


def test_an_interpreter_names_its_environment(project: Path) -> None:
    found = python_env(None, explicit=str(project / ".venv" / "bin" / "python"))
    assert found is not None and found.path == str(project / ".venv")
    assert found.interpreter == str(project / ".venv" / "bin" / "python")


def test_the_editors_interpreter_counts_only_when_it_has_an_environment(project: Path) -> None:
    found = python_env(project, editor_interpreter=str(project / ".venv" / "bin" / "python3"))
    assert found is not None and found.found_by == "the editor's interpreter"
    # A system interpreter selected in the editor is no environment: the search goes on.
    found = python_env(project, editor_interpreter="/usr/bin/python3")
    assert found is not None and found.found_by == "nearest .venv"


def test_switched_off_and_other_languages(project: Path) -> None:
    assert python_env(project, enabled=False) is None
    assert project_environment("bash", EnvironmentChoice(start=project)) is None
    with pytest.raises(ProjectEnvironmentError, match=r"bash.*no project environment"):
        project_environment("bash", EnvironmentChoice(start=project, explicit=str(project)))


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: tmp / "missing", "no such file or folder"),
        (lambda tmp: tmp, "not a Python environment"),
        (lambda tmp: Path.home(), "not a Python environment|holds more than one"),
    ],
    ids=["missing", "plain-folder", "home"],
)
def test_an_explicit_environment_that_cannot_be_used_is_a_clear_error(
    tmp_path: Path, make: object, fragment: str
) -> None:
    target = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ProjectEnvironmentError, match=fragment) as raised:
        python_env(None, explicit=str(target))
    assert raised.value.code == "FORGEAI-E130"


def test_a_venv_whose_interpreter_is_gone_is_refused(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    for name in ("python", "python3"):
        (venv / "bin" / name).unlink(missing_ok=True)
    (venv / "bin" / "python3").symlink_to(tmp_path / "removed-python")
    with pytest.raises(ProjectEnvironmentError, match="does not lead to a Python interpreter"):
        python_env(None, explicit=str(venv))
    assert python_env(tmp_path) is None  # found by the search: skipped, not an error


def test_a_found_venv_that_is_a_link_to_a_home_directory_is_skipped(tmp_path: Path) -> None:
    """A cloned repository's `.venv` pointing at the user's home must not get it mounted."""
    fake_home = tmp_path / "home"
    fake_home.mkdir()
    (fake_home / ".ssh").mkdir()  # a user's data: the folder holds more than a venv
    (fake_home / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (fake_home / "bin").mkdir()
    (fake_home / "bin" / "python3").symlink_to(os.path.realpath(sys.executable))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".venv").symlink_to(fake_home)
    assert python_env(repo) is None
    with pytest.raises(ProjectEnvironmentError, match="holds more than one environment"):
        python_env(None, explicit=str(repo / ".venv"))


def test_editable_installs_mount_their_sources_inside_the_project(
    project: Path, tmp_path: Path
) -> None:
    pth = site_packages(project / ".venv") / "_editable.pth"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    pth.write_text(f"{project / 'src'}\n{project}\n{outside}\nimport os\nrelative/path\n")
    try:
        found = python_env(project)
    finally:
        pth.unlink()
    assert found is not None
    src = str(project / "src")
    assert HostMount(source=src, target=src) in found.mounts
    assert all(mount.source not in (str(project), str(outside)) for mount in found.mounts)
    assert any("project folder itself is never mounted" in note for note in found.not_mounted)
    assert any(f"{outside}: outside the project" in note for note in found.not_mounted)


def test_a_python_prefix_without_pyvenv_cfg(tmp_path: Path) -> None:
    """A conda-style prefix: bin/python3 and lib/python3.X/ of its own."""
    prefix = tmp_path / "conda-env"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib" / "python3.11").mkdir(parents=True)
    (prefix / "lib" / "python3.11" / "os.py").write_text("")
    python = prefix / "bin" / "python3.11"
    python.write_bytes(Path(os.path.realpath(sys.executable)).read_bytes()[:64])
    python.chmod(0o755)
    (prefix / "bin" / "python3").symlink_to("python3.11")
    found = python_env(None, explicit=str(prefix))
    assert found is not None and found.kind == "python-prefix" and found.version is None
    assert found.mounts == (HostMount(source=str(prefix), target=str(prefix)),)


def test_node_modules_nearest_and_explicit(tmp_path: Path) -> None:
    (tmp_path / "node_modules" / "left-pad").mkdir(parents=True)
    deep = tmp_path / "src" / "lib"
    deep.mkdir(parents=True)
    found = project_environment("node", EnvironmentChoice(start=deep))
    assert found is not None and found.kind == "node-modules"
    assert found.path == str(tmp_path / "node_modules")
    assert found.mounts == (
        HostMount(source=str(tmp_path / "node_modules"), target=NODE_MODULES_TARGET),
    )
    explicit = project_environment("node", EnvironmentChoice(start=None, explicit=str(tmp_path)))
    assert explicit is not None and explicit.found_by == "--env"
    with pytest.raises(ProjectEnvironmentError, match="no usable node_modules"):
        project_environment("node", EnvironmentChoice(start=None, explicit=str(deep)))


def test_the_wire_form_is_camel_case_for_the_language_server(project: Path) -> None:
    found = python_env(project)
    assert found is not None
    wire = found.model_dump(mode="json", by_alias=True)
    assert {"kind", "path", "foundBy", "interpreter", "version", "mounts", "notMounted"} == set(
        wire
    )
