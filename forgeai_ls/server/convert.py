"""Conversions between ForgeAI's results and LSP types, all in one place."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from forgeai_ls.plugins.diagnostics import Diagnostic
from forgeai_ls.sandbox import ExecutionResult, LimitKind, ResourceLimits
from forgeai_ls.server.rpc import SOURCE

_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "note": types.DiagnosticSeverity.Information,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


def to_lsp_diagnostic(
    diagnostic: Diagnostic, line_offset: int, column_offset: int, line_count: int
) -> types.Diagnostic:
    """A program diagnostic placed in the document: line 1 of the program is ``line_offset``;
    columns on the program's first line are shifted by ``column_offset``."""
    line = min(max(diagnostic.line - 1 + line_offset, 0), max(line_count - 1, 0))
    column = max((diagnostic.column or 1) - 1, 0)
    if diagnostic.line == 1:
        column += column_offset
    end = column + 1 if diagnostic.column else 10_000
    return types.Diagnostic(
        range=types.Range(
            types.Position(line, column if diagnostic.column else 0), types.Position(line, end)
        ),
        message=diagnostic.message,
        severity=_SEVERITY.get(diagnostic.severity, types.DiagnosticSeverity.Error),
        source=SOURCE,
    )


def describe_limit(kind: LimitKind, limits: ResourceLimits) -> str:
    mib = 1024 * 1024
    return {
        LimitKind.TIMEOUT: f"the wall-clock limit of {limits.wall_timeout:g} s",
        LimitKind.CPU: f"the CPU-time limit of {limits.cpu_time:g} s",
        LimitKind.MEMORY: f"the memory limit of {limits.memory_bytes // mib} MiB",
        LimitKind.PROCESSES: f"the process limit of {limits.processes}",
        LimitKind.OUTPUT: f"the output limit of {limits.output_bytes} bytes",
        LimitKind.FILE_SIZE: f"the file-size limit of {limits.file_size_bytes // mib} MiB "
        f"(work dir {limits.disk_bytes // mib} MiB)",
    }[kind]


def limit_diagnostic(kind: LimitKind, limits: ResourceLimits, line: int) -> types.Diagnostic:
    return types.Diagnostic(
        range=types.Range(types.Position(line, 0), types.Position(line, 10_000)),
        message=f"Stopped by {describe_limit(kind, limits)} ({kind.value})",
        severity=types.DiagnosticSeverity.Warning,
        source=SOURCE,
        code=f"limit-{kind.value}",
    )


def run_summary(run_id: str, uri: str, result: ExecutionResult) -> dict[str, Any]:
    """The forgeai/runFinished payload (design.md 3.4)."""
    return {
        "runId": run_id,
        "uri": uri,
        "exitCode": result.exit_code,
        "signal": result.signal,
        "timedOut": result.timed_out,
        "limit": result.limit.value if result.limit else None,
        "truncated": result.truncated,
        "durationMs": round(result.duration_ms, 3),
    }
