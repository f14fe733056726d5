"""Every third-party module ForgeAI imports is a declared dependency, and every declared
dependency is used; modules of an extra are imported only by the code that needs it."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "forgeai_ls"
EXTRA_USERS = {
    "docker": ("forgeai_ls/sandbox/docker_", "forgeai_ls/images/"),
    "registry": ("forgeai_ls/registry/app.py", "forgeai_ls/registry/serving.py"),
}
"""Where each extra's modules may be imported (everything else is the core install)."""


def _declared() -> dict[str, set[str]]:
    """Distribution names per group: 'core' and each extra (dev left out)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {
        group: {canonicalize_name(Requirement(text).name) for text in requirements}
        for group, requirements in groups.items()
        if group != "dev"
    }


def _imports() -> dict[str, set[str]]:
    """Third-party top-level module -> the files importing it."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "forgeai_ls" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _distribution(module: str) -> str:
    names = packages_distributions().get(module)
    assert names, f"module {module} belongs to no installed distribution"
    return canonicalize_name(names[0])


def test_every_imported_module_is_declared_and_every_declared_one_used() -> None:
    declared = _declared()
    imported = {_distribution(module): files for module, files in _imports().items()}
    every = set().union(*declared.values())
    assert set(imported) - every == set(), "imported but not declared"
    assert every - set(imported) == set(), "declared but never imported"


def test_extras_are_imported_only_where_they_are_needed() -> None:
    declared = _declared()
    for module, files in _imports().items():
        distribution = _distribution(module)
        for extra, allowed in EXTRA_USERS.items():
            if distribution in declared[extra] and distribution not in declared["core"]:
                outside = {f for f in files if not f.startswith(allowed)}
                assert outside == set(), f"{module} ({extra} extra) imported by {outside}"
