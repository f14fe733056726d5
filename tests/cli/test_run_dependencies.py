"""`forgeai run` of programs that declare dependencies, from a real index on 127.0.0.4: the
install is said on stderr, cached for the next run, and a failure stops the run cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.package_index import build_wheel, serve_index

pytestmark = pytest.mark.sandbox

FORGEAI = [sys.executable, "-m", "forgeai_ls.cli.main"]
SCRIPT = (
    "# /// script\n# dependencies = ['greeter>=1']\n# ///\nimport greeter\nprint(greeter.hello())\n"
)


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("index")
    build_wheel(root, "greeter", "1.0", module="def hello():\n    return 'hello'\n")
    with serve_index(root) as url:
        yield url


@pytest.fixture
def env(index_url: str, tmp_path: Path) -> dict[str, str]:
    """A private ForgeAI home (its own environment cache), the test index."""
    return {
        **os.environ,
        "FORGEAI_DAEMON": "0",
        "FORGEAI_HOME": str(tmp_path / "home"),
        "UV_INDEX_URL": index_url,
    }


def forgeai(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*FORGEAI, *args], env=env, cwd=cwd, capture_output=True, timeout=300, check=False
    )


def test_a_pep_723_script_installs_once(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text(SCRIPT)
    first = forgeai(env, "run", "hello.py", cwd=tmp_path)
    assert (first.returncode, first.stdout) == (0, b"hello\n"), first.stderr
    lines = first.stderr.decode().splitlines()
    assert lines[0] == f"forgeai: Installing 1 package from {env['UV_INDEX_URL']}..."
    assert lines[1].startswith("forgeai: installed greeter==1.0 in ")
    second = forgeai(env, "run", "hello.py", "--json", cwd=tmp_path)
    document = json.loads(second.stdout)
    assert second.stderr == b"" and document["stdout"] == "hello\n"
    assert document["dependencies"] == {
        "source": "PEP 723 block",
        "requirements": ["greeter>=1"],
        "installed": ["greeter==1.0"],
        "cached": True,
    }
    assert document["environment"]["found_by"] == "dependencies of the PEP 723 block"
    assert document["environment"]["path"].startswith(env["FORGEAI_HOME"])


def test_deps_from_a_requirements_file(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import greeter\nprint(greeter.hello())\n")
    (tmp_path / "requirements.txt").write_text("greeter\n")
    done = forgeai(env, "run", "main.py", "--deps", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, b"hello\n"), done.stderr
    (tmp_path / "other.txt").write_text("greeter==1.0\n")
    done = forgeai(env, "run", "--deps-file", "other.txt", "main.py", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, b"hello\n"), done.stderr
    done = forgeai(env, "run", "main.py", cwd=tmp_path)  # without --deps: not installed
    assert done.returncode == 1 and b"No module named 'greeter'" in done.stderr


@pytest.mark.parametrize(
    ("script", "code", "fragment"),
    [
        ("# /// script\n# dependencies = ['greeter'\n# ///\n", "FORGEAI-E140", "not valid TOML"),
        (
            "# /// script\n# dependencies = ['not-on-the-index']\n# ///\n",
            "FORGEAI-E142",
            "'not-on-the-index' is not on the index",
        ),
        (
            "# /// script\n# requires-python = '>=4'\n# dependencies = ['greeter']\n# ///\n",
            "FORGEAI-E143",
            "requires Python >=4",
        ),
    ],
    ids=["malformed", "unknown", "requires-python"],
)
def test_a_failed_install_stops_the_run_with_one_clear_error(
    env: dict[str, str], tmp_path: Path, script: str, code: str, fragment: str
) -> None:
    (tmp_path / "x.py").write_text(script + "print('the program ran')\n")
    done = forgeai(env, "run", "x.py", cwd=tmp_path)
    assert done.returncode == 125 and b"the program ran" not in done.stdout
    errors = [line for line in done.stderr.decode().splitlines() if "FORGEAI-E" in line]
    assert len(errors) == 1 and code in errors[0] and fragment in errors[0], done.stderr
    envs = Path(env["FORGEAI_HOME"]) / "cache" / "envs"
    unused = (".locks", ".versions.json")  # install locks, the interpreters' versions
    assert not envs.exists() or not [p for p in envs.iterdir() if p.name not in unused]


def test_the_daemon_installs_the_same_way(env: dict[str, str], tmp_path: Path) -> None:
    daemon_env = {**env, "FORGEAI_DAEMON": "1"}
    (tmp_path / "hello.py").write_text(SCRIPT)
    subprocess.run([*FORGEAI, "daemon", "start"], env=daemon_env, cwd=tmp_path, check=True)
    try:
        for _ in range(2):
            done = forgeai(daemon_env, "run", "hello.py", cwd=tmp_path)
            assert (done.returncode, done.stdout) == (0, b"hello\n"), done.stderr
        status = subprocess.run(
            [*FORGEAI, "daemon", "status", "--json"],
            env=daemon_env,
            cwd=tmp_path,
            capture_output=True,
            check=True,
        )
        served = sum(d["runs"] for d in json.loads(status.stdout)["daemons"] if d["current"])
        assert served == 2
    finally:
        subprocess.run([*FORGEAI, "daemon", "stop"], env=daemon_env, cwd=tmp_path, check=False)
