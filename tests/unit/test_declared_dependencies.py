"""Reading declared dependencies (PEP 723 blocks, requirements files, pyproject.toml), the
package index configuration, and the environment cache's eviction (no sandbox needed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from forgeai_ls.dependencies.declared import dependencies_file, script_metadata
from forgeai_ls.dependencies.environment_cache import (
    METADATA,
    EnvironmentCache,
    EnvironmentKey,
    EnvironmentRecord,
)
from forgeai_ls.dependencies.for_run import declared_dependencies
from forgeai_ls.dependencies.package_index import PYPI, python_index
from forgeai_ls.errors import DependencySpecError

SCRIPT = """#!/usr/bin/env python3
# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "requests<3",
#   "Rich >= 13",
# ]
# ///
import requests
"""


def test_a_pep_723_block() -> None:
    found = script_metadata(SCRIPT)
    assert found is not None
    assert found.requirements == ("requests<3", "Rich>=13")
    assert found.requires_python == ">=3.10"
    assert found.source == "PEP 723 block"
    assert script_metadata("import os\n") is None
    other_type = "# /// pyproject\n# [tool.x]\n# ///\n"
    assert script_metadata(other_type) is None


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("# /// script\n# dependencies = ['x']\nprint(1)\n", "never closed"),
        ("# /// script\n# dependencies = [\n# ///\n", "not valid TOML"),
        ("# /// script\n# dependencies = 'requests'\n# ///\n", "must be a list of strings"),
        ("# /// script\n# dependencies = ['requests >>> 2']\n# ///\n", "not a valid requirement"),
        ("# /// script\n# dependencies = ['x @ https://e.org/x.whl']\n# ///\n", "names a URL"),
        ("# /// script\n# requires-python = 'three'\n# ///\n", "not a version specifier"),
        (
            "# /// script\n# dependencies = []\n# ///\nx = 1\n# /// script\n# dependencies = []\n"
            "# ///\n",
            "more than one",
        ),
    ],
    ids=["unclosed", "toml", "not-a-list", "requirement", "url", "requires-python", "two"],
)
def test_a_malformed_block_is_a_clear_error(code: str, fragment: str) -> None:
    with pytest.raises(DependencySpecError) as raised:
        script_metadata(code, where="x.py")
    assert raised.value.code == "FORGEAI-E140"
    assert fragment in raised.value.message and "x.py" in raised.value.message


def test_requirements_txt_and_pyproject(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# tools\nrequests==2.31.0  # pinned\n\nrich\n")
    assert dependencies_file(requirements).requirements == ("requests==2.31.0", "rich")
    requirements.write_text("-r other.txt\n")
    with pytest.raises(DependencySpecError, match="options such as -r"):
        dependencies_file(requirements)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "p"\nrequires-python = ">=3.9"\ndependencies = ["attrs"]\n'
    )
    found = dependencies_file(pyproject)
    assert (found.requirements, found.requires_python) == (("attrs",), ">=3.9")
    with pytest.raises(DependencySpecError, match="no such file"):
        dependencies_file(tmp_path / "missing.txt")


def test_deps_beside_the_file_and_other_languages(tmp_path: Path) -> None:
    program = tmp_path / "main.py"
    program.write_text("print(1)\n")
    with pytest.raises(DependencySpecError, match=r"neither requirements\.txt nor pyproject"):
        declared_dependencies("python3", "print(1)", file=program, deps="auto")
    (tmp_path / "pyproject.toml").write_text('[project]\nname="p"\ndependencies=["attrs"]\n')
    (tmp_path / "requirements.txt").write_text("rich\n")
    found = declared_dependencies("python3", "print(1)", file=program, deps="auto")
    assert found is not None and found.requirements == ("rich",)  # requirements.txt first
    assert declared_dependencies("python3", "print(1)\n", file=program, deps=None) is None
    assert declared_dependencies("node", SCRIPT, file=None, deps=None) is None
    with pytest.raises(DependencySpecError, match="for Python programs"):
        declared_dependencies("node", "", file=program, deps="auto")


def test_the_index_comes_from_the_users_configuration(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    assert python_index(home).url == PYPI
    pip_conf = tmp_path / "config" / "pip" / "pip.conf"
    pip_conf.parent.mkdir(parents=True)
    pip_conf.write_text("[global]\nindex-url = https://pip.example/simple\n")
    assert python_index(home).url == "https://pip.example/simple"
    uv_toml = tmp_path / "config" / "uv" / "uv.toml"
    uv_toml.parent.mkdir(parents=True)
    uv_toml.write_text('[[index]]\nurl = "https://uv.example/simple"\ndefault = true\n')
    assert python_index(home).url == "https://uv.example/simple"
    found = python_index({**home, "UV_INDEX_URL": "http://127.0.0.9:8080/simple"})
    assert (found.url, found.source) == ("http://127.0.0.9:8080/simple", "UV_INDEX_URL")
    assert [str(rule) for rule in found.egress().rules] == ["127.0.0.9:8080"]
    pypi = python_index({"HOME": str(tmp_path / "nobody")})
    assert [str(rule) for rule in pypi.egress().rules] == [
        "pypi.org:443",
        "files.pythonhosted.org:443",
    ]
    with pytest.raises(DependencySpecError, match="not an http"):
        python_index({**home, "UV_INDEX_URL": "file:///srv/index"})
    secret = python_index({**home, "PIP_INDEX_URL": "https://user:pw@idx.example/simple"})
    assert secret.display_url == "https://idx.example/simple"


def test_the_least_recently_used_environments_go_first(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path / "envs", cap_bytes=2500)

    def add(name: str, used: float) -> Path:
        key = EnvironmentKey((name,), "/usr/bin/python3", "3.11.2", "https://i/simple", "uv")
        building = cache.building_dir(key)
        (building / "payload").write_bytes(b"x" * 1000)
        record = EnvironmentRecord(
            requirements=(name,),
            installed=(f"{name}==1",),
            interpreter="/usr/bin/python3",
            python_version="3.11.2",
            index="https://i/simple",
            size_bytes=1000,
            created=time.time(),
        )
        folder = cache.commit(building, key, record)
        os.utime(folder / "used", (used, used))
        return folder

    now = time.time()
    oldest, older = add("a", now - 3600), add("b", now - 1800)
    newest = add("c", now - 600)  # 3000 bytes > 2500: the least recently used goes
    assert not oldest.exists() and older.exists() and newest.exists()
    assert (newest / METADATA).is_file()
    assert not any(p.name.startswith(".building") for p in cache.root.iterdir())
