"""What to run in a sandbox: files, an optional compile step, a run step, stdin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from forgeai_ls.sandbox.egress_policy import EgressPolicy
from forgeai_ls.sandbox.limits import ResourceLimits

WORK_DIR = "/work"
"""The program's writable, memory-backed working directory inside the sandbox."""
BUILD_DIR = "/build"
"""Where a compile step writes its output; read-only in the run step."""


class StepSpec(BaseModel):
    """One command run in a fresh sandbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    argv: tuple[str, ...] = Field(min_length=1)
    """argv[0] is a command name looked up on the host PATH, or an absolute sandbox path."""
    limits: ResourceLimits
    env: Mapping[str, str] = Field(default_factory=dict)
    """Variables on top of the sandbox's minimal environment (PATH, HOME, LANG, TMPDIR)."""


class HostMount(BaseModel):
    """A file or folder of this machine, bound into the sandbox (read-only unless
    ``writable``: only ForgeAI's own dependency installs write to the host)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    """Absolute path on this machine (links resolved)."""
    target: str
    """Absolute path inside the sandbox."""
    writable: bool = False

    @field_validator("source", "target")
    @classmethod
    def _absolute(cls, path: str) -> str:
        parts = PurePosixPath(path).parts
        if not PurePosixPath(path).is_absolute() or ".." in parts or len(parts) < 2:
            raise ValueError(f"mount path {path!r} must be absolute, below /, without '..'")
        return path


class WarmStart(BaseModel):
    """How the run step can be served by a sandbox started ahead of time (a warm slot)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["python", "node", "shell"]
    """Which waiting program the slot runs (see ``warm_starters``)."""
    script_index: int = Field(default=1, ge=1)
    """Position of the program's file in the run step's argv."""
    language: str = ""
    """The language, for per-language pool sizes."""


class SandboxRequest(BaseModel):
    """A complete execution: files placed in the work dir, optional compile step, run step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: Mapping[str, bytes]
    """Relative file name -> content, written into the work dir before each step."""
    readonly_files: Mapping[str, bytes] = {}
    """Like ``files``, but read-only in the sandbox (the native backend binds them read-only;
    a code plugin's own files). Never in a warm slot or the compile cache's key."""
    run: StepSpec
    compile: StepSpec | None = None
    stdin: bytes | None = None
    """The run step's standard input; ``None`` gives it an empty stdin."""
    seccomp_profile: str | None = None
    """A Docker/OCI seccomp profile (JSON text) applied on top of ForgeAI's own denials."""
    image: str | None = None
    """The container image the docker backend runs the steps in (the native backend, which
    uses the host's toolchains, ignores it)."""
    mounts: tuple[HostMount, ...] = ()
    """Host paths bound read-only into every step (a project's environment, see
    ``forgeai_ls.project_env``); the native backend binds them after the work dir, so one may
    land inside it (``/work/node_modules``)."""
    egress: EgressPolicy | None = None
    """The run step reaches these hosts, and only these, through ForgeAI's egress proxy (its
    own network stays off: see ``egress_proxy``). ``None``: as ``run.limits.network`` says."""
    warm: WarmStart | None = None
    """Set when the language can run in a warm slot; a backend with pools uses one when ready
    (the result is the same either way)."""

    @field_validator("files", "readonly_files")
    @classmethod
    def _names_stay_in_work_dir(cls, files: Mapping[str, bytes]) -> Mapping[str, bytes]:
        for name in files:
            path = PurePosixPath(name)
            if not name or path.is_absolute() or ".." in path.parts or name.endswith("/"):
                raise ValueError(f"file name {name!r} must be a relative path inside the work dir")
        return files
