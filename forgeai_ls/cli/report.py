"""How run results are printed: live streams, a closing status line, or one JSON object."""

from __future__ import annotations

import json
import signal as signals
import sys
from typing import TYPE_CHECKING, Any

from forgeai_ls.sandbox import ExecutionResult, LimitKind, ResourceLimits

if TYPE_CHECKING:
    from forgeai_ls.artifact_files import SavedArtifact
    from forgeai_ls.dependencies.for_run import DependencyReport
    from forgeai_ls.project_env import ProjectEnvironment

EXIT_TIMEOUT = 124
"""The wall-clock limit stopped the program (GNU timeout's convention)."""
EXIT_FORGEAI_FAILED = 125
"""ForgeAI itself failed (docker run's convention)."""


def exit_status(result: ExecutionResult) -> int:
    if result.timed_out:
        return EXIT_TIMEOUT
    if result.signal is not None:
        return 128 + result.signal
    return result.exit_code if result.exit_code is not None else EXIT_FORGEAI_FAILED


def _limit_value(kind: LimitKind, limits: ResourceLimits) -> str:
    values = {
        LimitKind.TIMEOUT: f"{limits.wall_timeout:g} s wall clock",
        LimitKind.CPU: f"{limits.cpu_time:g} s CPU time",
        LimitKind.MEMORY: f"{limits.memory_bytes // (1024 * 1024)} MiB memory",
        LimitKind.PROCESSES: f"{limits.processes} processes",
        LimitKind.OUTPUT: f"{limits.output_bytes} bytes of output",
        LimitKind.FILE_SIZE: f"{limits.file_size_bytes // (1024 * 1024)} MiB per file, "
        f"{limits.disk_bytes // (1024 * 1024)} MiB work dir",
    }
    return values[kind]


def status_line(result: ExecutionResult, limits: ResourceLimits) -> str | None:
    """A closing line for the terminal when something other than a plain exit happened."""
    if result.compile_failed:
        return f"forgeai: compilation failed (exit {exit_status(result)})"
    if result.limit is not None:
        return (
            f"forgeai: stopped by the {result.limit.value} limit "
            f"({_limit_value(result.limit, limits)}); exit {exit_status(result)}"
        )
    if result.signal is not None:
        name = signals.Signals(result.signal).name if result.signal < signals.NSIG else "?"
        return f"forgeai: killed by signal {result.signal} ({name})"
    return None


def result_json(
    result: ExecutionResult,
    *,
    language: str,
    plugin: str,
    backend: str,
    environment: ProjectEnvironment | None = None,
    dependencies: DependencyReport | None = None,
    artifacts: tuple[list[SavedArtifact], tuple[str, ...]] = ([], ()),
) -> dict[str, Any]:
    def text(data: bytes) -> str:
        return data.decode("utf-8", errors="replace")

    compile_step = result.compile
    return {
        "language": language,
        "plugin": plugin,
        "backend": backend,
        "environment": environment.model_dump(mode="json") if environment else None,
        "dependencies": dependencies.model_dump(mode="json") if dependencies else None,
        "artifacts": [item.model_dump(mode="json") for item in artifacts[0]],
        "artifacts_skipped": list(artifacts[1]),
        "exit_code": result.exit_code,
        "signal": result.signal,
        "stdout": text(result.stdout),
        "stderr": text(result.stderr),
        "timed_out": result.timed_out,
        "limit": result.limit.value if result.limit else None,
        "limits_hit": [kind.value for kind in result.limits_hit],
        "truncated": result.truncated,
        "duration_ms": round(result.duration_ms, 3),
        "cpu_time_ms": None if result.cpu_time_ms is None else round(result.cpu_time_ms, 3),
        "peak_memory_bytes": result.peak_memory_bytes,
        "network": result.network.model_dump(mode="json") if result.network else None,
        "compile": None
        if compile_step is None
        else {
            "exit_code": compile_step.exit_code,
            "signal": compile_step.signal,
            "stdout": text(compile_step.stdout),
            "stderr": text(compile_step.stderr),
            "timed_out": compile_step.timed_out,
            "limit": compile_step.limit.value if compile_step.limit else None,
            "duration_ms": round(compile_step.duration_ms, 3),
            "cached": compile_step.cached,
        },
    }


def print_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
