"""The declarative description of how one language is compiled and run.

This is the per-language section plugin manifests declare; the sandbox layer only sees the
``SandboxRequest`` built from it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forgeai_ls.sandbox.limits import ResourceLimits
from forgeai_ls.sandbox.request import WarmStart

PLACEHOLDERS = ("source", "stem", "work", "build", "memory_bytes", "memory_mb")
"""``{name}`` placeholders usable in commands: the source file path in the sandbox, its name
without extension, the work and build directories, and the run's memory limit."""


class LimitOverrides(BaseModel):
    """Per-language changes to the default limits (only the fields given)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_timeout: float | None = None
    cpu_time: float | None = None
    memory_bytes: int | None = None
    processes: int | None = None
    output_bytes: int | None = None
    file_size_bytes: int | None = None
    disk_bytes: int | None = None
    open_files: int | None = None

    def apply(self, limits: ResourceLimits) -> ResourceLimits:
        return limits.with_overrides(**self.model_dump())


class DiagnosticPattern(BaseModel):
    """A regular expression that turns a compiler or runtime error line into a diagnostic.

    Named groups: ``line`` (required), ``column``, ``message``, ``file`` and ``severity``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str
    step: Literal["compile", "run", "any"] = "any"
    severity: Literal["error", "warning", "information", "hint"] = "error"
    pick: Literal["all", "first", "last"] = "all"
    """Which matches count: every one (compilers), or only the first or last frame of a
    stack trace that names the program's file."""

    @field_validator("pattern")
    @classmethod
    def _has_line_group(cls, pattern: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        if "line" not in compiled.groupindex:
            raise ValueError("needs a named group (?P<line>...)")
        return pattern


_SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}")
_SAFE_STEM = re.compile(r"(?:[^\W\d]|\$)[\w$]{0,127}")
"""What a name taken from the code (Java's public class) may be: never a path."""
_ESCAPING_PROBES = (
    "public class ../../x {",
    "public class /etc/x {",
    "public class a/b {",
    "class ../x",
    "../../x",
    "/x",
)
"""Lines a pattern's group is tried on at validation: none may yield a path."""


class LanguageSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9+#_-]*$")
    display_name: str
    aliases: tuple[str, ...] = ()
    extensions: tuple[str, ...] = Field(min_length=1)
    source_file: str
    """File name of a snippet's source in the work dir (a run file keeps its own name)."""
    main_name_pattern: str | None = None
    """Regex whose first group names the source file's stem (Java's public class)."""
    compile: tuple[str, ...] | None = None
    run: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    compile_limits: LimitOverrides = LimitOverrides()
    run_limits: LimitOverrides = LimitOverrides()
    diagnostics: tuple[DiagnosticPattern, ...] = ()
    cell_marker: str | None = None
    """A line that starts a notebook-style cell (``# %%`` in Python), for run-one-cell."""
    warm: Literal["python", "node", "shell"] | None = None
    """How a sandbox started ahead of time can serve this language (warm pools): ``python``
    and ``node`` keep that interpreter waiting (``run`` must be the interpreter, its options,
    then ``{source}``); ``shell`` keeps the sandbox waiting and starts ``run`` when the program
    arrives (any interpreted language). Ignored for languages with a compile step."""

    @model_validator(mode="after")
    def _warm_runs_the_source(self) -> LanguageSpec:
        if self.warm in ("python", "node") and "{source}" not in self.run[1:]:
            raise ValueError(
                f"warm: {self.warm} needs '{{source}}' in run after the interpreter "
                "(the interpreter runs the file)"
            )
        return self

    def warm_start(self) -> WarmStart | None:
        """The sandbox layer's description of this language's warm start, if any."""
        if self.warm is None or self.compile is not None:
            return None
        index = self.run.index("{source}") if "{source}" in self.run else 1
        return WarmStart(kind=self.warm, script_index=max(1, index), language=self.name)

    @field_validator("extensions")
    @classmethod
    def _dotted(cls, extensions: tuple[str, ...]) -> tuple[str, ...]:
        for extension in extensions:
            if not re.fullmatch(r"\.[A-Za-z0-9+_-]+", extension):
                raise ValueError(f"extension {extension!r} must look like '.py'")
        return extensions

    @field_validator("source_file")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        if not _SAFE_NAME.fullmatch(name) or ".." in name:
            raise ValueError(
                f"source_file {name!r} must be a plain file name in the work dir "
                "(letters, digits, '._+-'; no '/', no '..')"
            )
        return name

    @field_validator("main_name_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
            if compiled.groups < 1:
                raise ValueError("main_name_pattern needs a group: the file's stem")
            for probe in _ESCAPING_PROBES:
                match = compiled.search(probe)
                if match and not _SAFE_STEM.fullmatch(match.group(1) or ""):
                    raise ValueError(
                        f"main_name_pattern can name a file outside the work dir "
                        f"({match.group(1)!r} from {probe!r}); its group must match only a "
                        "name such as [A-Za-z_$][A-Za-z0-9_$]*"
                    )
        return pattern

    @field_validator("compile", "run")
    @classmethod
    def _known_placeholders(cls, command: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for part in command or ():
            for name in re.findall(r"\{([^{}]*)\}", part):
                if name not in PLACEHOLDERS:
                    raise ValueError(
                        f"unknown placeholder {{{name}}}; known: "
                        + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                    )
        return command

    def source_name_for(self, code: str, file_name: str | None) -> str:
        """The name the source gets in the work dir."""
        if file_name is not None:
            return PurePosixPath(file_name).name
        if self.main_name_pattern:
            match = re.search(self.main_name_pattern, code, re.MULTILINE)
            if match and _SAFE_STEM.fullmatch(match.group(1) or ""):
                return f"{match.group(1)}{PurePosixPath(self.source_file).suffix}"
        return self.source_file
