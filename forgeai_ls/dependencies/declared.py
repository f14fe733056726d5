"""Dependencies a program declares: PEP 723 inline script metadata, or a requirements file or
``pyproject.toml`` beside it when asked (``--deps``).

Only reading and checking happens here (nothing is installed): each requirement must be a valid
PEP 508 requirement, ``requires-python`` a valid specifier that the interpreter satisfies. A
malformed block is an error with a code, never ignored: the run does not start.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import BaseModel, ConfigDict

from forgeai_ls.errors import DependencySpecError

# PEP 723's reference expression: a block opens with "# /// TYPE" and closes with "# ///",
# every line in between is "#" or "# " and content.
_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_MAX_REQUIREMENTS = 200
_MAX_FILE_BYTES = 256 * 1024


class DeclaredDependencies(BaseModel):
    """What a program needs installed, and where that was read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requirements: tuple[str, ...]
    """PEP 508 requirements, normalised (``Requirement(...)`` text), in the order given."""
    requires_python: str | None = None
    source: str
    """"PEP 723 block", "requirements.txt", "pyproject.toml"..."""


def script_metadata(code: str, *, where: str = "the program") -> DeclaredDependencies | None:
    """The ``script`` block of PEP 723 metadata in ``code``, or None when there is none."""
    blocks = [m for m in _BLOCK.finditer(code) if m.group("type") == "script"]
    if not blocks:
        if re.search(r"(?m)^# /// script\s*$", code):
            raise DependencySpecError(
                f"{where}: a '# /// script' block is opened but never closed with '# ///'",
                hint="end the block with a line '# ///'; every line inside starts with '#'",
            )
        return None
    if len(blocks) > 1:
        raise DependencySpecError(
            f"{where}: more than one '# /// script' block (PEP 723 allows one)",
            hint="merge them into a single block",
        )
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        table = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise DependencySpecError(
            f"{where}: the '# /// script' block is not valid TOML ({exc})",
            hint="see https://packaging.python.org/specifications/inline-script-metadata/",
        ) from None
    dependencies = table.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise DependencySpecError(
            f"{where}: 'dependencies' in the '# /// script' block must be a list of strings",
            hint='e.g. dependencies = ["requests<3", "rich"]',
        )
    requires_python = table.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise DependencySpecError(
            f"{where}: 'requires-python' must be a string such as \">=3.11\"",
        )
    return DeclaredDependencies(
        requirements=_checked(dependencies, where),
        requires_python=_checked_specifier(requires_python, where),
        source="PEP 723 block",
    )


def dependencies_file(path: Path) -> DeclaredDependencies:
    """``requirements.txt`` (names, versions, markers; ``-r`` and options are refused) or a
    ``pyproject.toml``'s ``[project] dependencies``."""
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise DependencySpecError(f"{path}: larger than {_MAX_FILE_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DependencySpecError(
            f"{path}: no such file", hint="--deps-file names a requirements file or pyproject.toml"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DependencySpecError(f"{path}: cannot be read ({exc})") from None
    if path.name == "pyproject.toml":
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise DependencySpecError(f"{path}: not valid TOML ({exc})") from None
        dependencies = project.get("dependencies", []) if isinstance(project, dict) else None
        if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
            raise DependencySpecError(f"{path}: [project] dependencies must be a list of strings")
        requires = project.get("requires-python")
        return DeclaredDependencies(
            requirements=_checked(dependencies, str(path)),
            requires_python=_checked_specifier(
                requires if isinstance(requires, str) else None, str(path)
            ),
            source=str(path),
        )
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise DependencySpecError(
                f"{path}:{number}: options such as {line.split()[0]} are not supported",
                hint="list requirements only; the index comes from your pip/uv configuration",
            )
        lines.append(line)
    return DeclaredDependencies(requirements=_checked(lines, str(path)), source=str(path))


def _checked(requirements: list[str], where: str) -> tuple[str, ...]:
    if len(requirements) > _MAX_REQUIREMENTS:
        raise DependencySpecError(f"{where}: more than {_MAX_REQUIREMENTS} requirements")
    checked = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise DependencySpecError(
                f"{where}: {text!r} is not a valid requirement ({exc})",
                hint='write it as PEP 508 says, e.g. "requests>=2.31" or "rich"',
            ) from None
        if requirement.url is not None:
            raise DependencySpecError(
                f"{where}: {text!r} names a URL; only packages from the index are installed",
                hint="publish it to your index, or install it into the project's virtualenv",
            )
        checked.append(str(requirement))
    return tuple(checked)


def _checked_specifier(text: str | None, where: str) -> str | None:
    if text is None:
        return None
    try:
        return str(SpecifierSet(text))
    except InvalidSpecifier:
        raise DependencySpecError(
            f"{where}: requires-python {text!r} is not a version specifier",
            hint='e.g. requires-python = ">=3.11"',
        ) from None
