"""Resource limits of one sandboxed step (a compile or a run)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forgeai_ls.errors import LimitsError

KIB = 1024
MIB = 1024 * KIB


class ResourceLimits(BaseModel):
    """What one sandboxed step may use before ForgeAI stops it.

    The defaults suit an editor user running a script or a small program: long enough for real
    work, short enough that a mistake (an endless loop, a runaway allocation) comes back within
    seconds. See docs/limits.md for how each one is enforced.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_timeout: float = Field(10.0, gt=0, le=3600, description="Wall-clock seconds.")
    cpu_time: float = Field(10.0, gt=0, le=3600, description="CPU seconds (all processes).")
    memory_bytes: int = Field(512 * MIB, ge=16 * MIB, description="Resident memory.")
    processes: int = Field(128, ge=1, le=4096, description="Processes and threads at once.")
    output_bytes: int = Field(1 * MIB, ge=1, description="stdout + stderr, combined.")
    file_size_bytes: int = Field(16 * MIB, ge=KIB, description="Largest file the program writes.")
    disk_bytes: int = Field(64 * MIB, ge=MIB, description="Size of the writable work dir and /tmp.")
    open_files: int = Field(256, ge=16, le=65536, description="Open file descriptors.")
    network: bool = Field(False, description="Allow network access (host network namespace).")

    def with_overrides(self, **changes: object) -> ResourceLimits:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        given = {key: value for key, value in changes.items() if value is not None}
        try:
            return self.model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise LimitsError(f"invalid resource limits: {problems}") from None


DEFAULT_RUN_LIMITS = ResourceLimits()
"""Limits of the run step when nothing else is configured."""

DEFAULT_COMPILE_LIMITS = ResourceLimits(
    wall_timeout=60.0,
    cpu_time=60.0,
    memory_bytes=1024 * MIB,
    processes=256,
    output_bytes=1 * MIB,
    file_size_bytes=128 * MIB,
    disk_bytes=256 * MIB,
)
"""Limits of the compile step: compilers are slower and larger than the programs they build."""
