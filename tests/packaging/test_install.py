"""ForgeAI installed as users install it: the built wheel (and the sdist) into a fresh virtual
environment in a temporary folder, no editable install, no source tree on the path; also
`uv tool install` and `pipx install` of the wheel.

Each install must give the whole product: the official plugins inside the package, Python
and C runs through the CLI, a runFile through the language server; and a command that needs
an extra that is not installed says which one (FORGEAI-E105, exit 125).

Not part of the unprivileged sandbox battery: what is tested here is the install, and it
builds from the git checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

REPO = Path(__file__).resolve().parents[2]
UV = str(Path(sys.executable).with_name("uv"))
C_PROGRAM = '#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }\n'


def _clean_env(**extra: str) -> dict[str, str]:
    """The user's environment without anything that points at the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "FORGEAI_DAEMON": "0", **extra}


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        argv, cwd=cwd, env=_clean_env(**env), capture_output=True, timeout=600, check=False
    )


def _checked(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    done = _run(argv, cwd, **env)
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-4000:])
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and the sdist, built from a copy of the tracked files (as a fresh clone
    would build them)."""
    root = tmp_path_factory.mktemp("dist")
    source = root / "source"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        path = REPO / os.fsdecode(name)
        if path.is_file():
            target = source / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    out = root / "out"
    _checked([UV, "build", "--wheel", "--sdist", "--out-dir", str(out), str(source)], root)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _venv_with(package: Path, where: Path) -> Path:
    _checked([UV, "venv", "--python", sys.executable, str(where)], where.parent)
    _checked([UV, "pip", "install", "--python", str(where / "bin" / "python"), str(package)],
             where.parent)  # fmt: skip
    return where / "bin"


@pytest.fixture(scope="module")
def wheel_bin(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv_with(dist["wheel"], tmp_path_factory.mktemp("wheel") / "venv")


def _assert_runs_python_and_c(bin_dir: Path, cwd: Path) -> None:
    forgeai = str(bin_dir / "forgeai")
    listed = json.loads(_checked([forgeai, "languages", "--json"], cwd).stdout)
    names = {language["name"] for language in listed["languages"]}
    assert {"python", "c", "bash", "javascript"} <= names, listed
    python = _checked([forgeai, "run", "-l", "python", "-c", "print(6 * 7)"], cwd)
    assert python.stdout == b"42\n"
    program = cwd / "answer.c"
    program.write_text(C_PROGRAM)
    compiled = _checked([forgeai, "run", str(program)], cwd)
    assert compiled.stdout == b"42\n"


def test_the_wheel_holds_the_official_plugins_and_their_lock(dist: dict[str, Path]) -> None:
    import zipfile

    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    assert "forgeai_ls/official_plugins/official.lock.json" in names
    for plugin in ("python", "c", "rust", "java"):
        assert f"forgeai_ls/official_plugins/{plugin}/plugin.yaml" in names
    assert not any("__pycache__" in name for name in names)


def test_a_wheel_install_runs_python_and_c(wheel_bin: Path, tmp_path: Path) -> None:
    _assert_runs_python_and_c(wheel_bin, tmp_path)


def test_an_sdist_install_runs_python_and_c(dist: dict[str, Path], tmp_path: Path) -> None:
    _assert_runs_python_and_c(_venv_with(dist["sdist"], tmp_path / "venv"), tmp_path)


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["run", "--backend", "docker", "-l", "python", "-c", "print(1)"], "docker"),
        (["image", "list"], "docker"),
        (["registry", "serve", "--port", "0"], "registry"),
    ],
)
def test_a_missing_extra_is_named(
    wheel_bin: Path, tmp_path: Path, args: list[str], extra: str
) -> None:
    """The core install has no docker-py and no registry server: a command that needs one
    says which extra to install, in one line with a code, exit 125."""
    done = _run([str(wheel_bin / "forgeai"), *args], tmp_path)
    assert done.returncode == 125
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "FORGEAI-E105" in lines[0], lines
    assert f"forgeai-ls[{extra}]" in lines[0]


def test_the_registry_client_works_without_the_server_extra(
    wheel_bin: Path, tmp_path: Path
) -> None:
    """Searching and installing from a registry (served from the source tree, which has the
    extra) work with the core install; the installed plugin runs."""
    from tests.registry.conftest import RunningRegistry
    from tests.support.plugin_archives import Author, forgeai

    author = Author(tmp_path / "author-home", tmp_path / "author-work", key="acme")
    registry = RunningRegistry(tmp_path / "registry", tmp_path / "registry-home")
    try:
        token = registry.token("acme", author.public_key_path)
        folder = author.folder("zed-executor", "1.0.0", description="Runs zed programs")
        built = forgeai(author.home, "plugin", "build", str(folder), "-o", str(folder.parent),
                        "--json")  # fmt: skip
        archive = json.loads(built.stdout)["path"]
        published = forgeai(author.home, "plugin", "publish", archive, "--registry",
                            registry.url, "--token", token)  # fmt: skip
        assert published.returncode == 0, published.stderr
        user = tmp_path / "user-home"
        author.trust_in(user)
        installed = wheel_bin / "forgeai"
        remote = ["--registry", registry.url]
        found = _checked([str(installed), "plugin", "search", "zed", *remote, "--json"],
                         tmp_path, FORGEAI_HOME=str(user))  # fmt: skip
        assert [p["name"] for p in json.loads(found.stdout)["plugins"]] == ["zed-executor"]
        _checked([str(installed), "plugin", "install", "zed-executor", *remote], tmp_path,
                 FORGEAI_HOME=str(user))  # fmt: skip
        listed = _checked([str(installed), "languages", "--json"], tmp_path,
                          FORGEAI_HOME=str(user))  # fmt: skip
        assert "zed" in {entry["name"] for entry in json.loads(listed.stdout)["languages"]}
    finally:
        registry.stop()


async def test_the_installed_language_server_runs_a_file(wheel_bin: Path, tmp_path: Path) -> None:
    config = ClientServerConfig(
        server_command=[str(wheel_bin / "forgeai-ls")], server_env=_clean_env()
    )
    client = await config.start()
    try:
        await client.initialize_session(
            types.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
        )
        uri = (tmp_path / "hello.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text="print('installed')\n"
                )
            )
        )
        result: Any = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="forgeai.runFile", arguments=[uri])
        )
        assert (result["exitCode"], result["stdout"]) == (0, "installed\n")
        await client.shutdown_session()
    finally:
        await client.stop()


@pytest.fixture
def tool_dirs(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "UV_TOOL_BIN_DIR": str(tmp_path / "uv-bin"),
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "pipx-bin"),
    }


def test_uv_tool_install_of_the_wheel(
    dist: dict[str, Path], tmp_path: Path, tool_dirs: dict[str, str]
) -> None:
    _checked(
        [UV, "tool", "install", "--python", sys.executable, str(dist["wheel"])],
        tmp_path,
        **tool_dirs,
    )
    _assert_runs_python_and_c(Path(tool_dirs["UV_TOOL_BIN_DIR"]), tmp_path)


def test_pipx_install_of_the_wheel(
    dist: dict[str, Path], tmp_path: Path, tool_dirs: dict[str, str]
) -> None:
    pipx = str(Path(sys.executable).with_name("pipx"))
    _checked(
        [pipx, "install", "--python", sys.executable, str(dist["wheel"])], tmp_path, **tool_dirs
    )
    _assert_runs_python_and_c(Path(tool_dirs["PIPX_BIN_DIR"]), tmp_path)
