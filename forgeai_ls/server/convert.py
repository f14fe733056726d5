"""Conversions between ForgeAI's results and LSP types, all in one place."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from forgeai_ls.plugins.diagnostics import Diagnostic
from forgeai_ls.sandbox import ExecutionResult, LimitKind, ResourceLimits
from forgeai_ls.server.placement import Placement
from forgeai_ls.server.rpc import SOURCE

_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "note": types.DiagnosticSeverity.Information,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


def to_lsp_diagnostic(diagnostic: Diagnostic, placement: Placement) -> types.Diagnostic:
    """A program diagnostic (1-based line and code-point column of the program's text)
    placed in the document."""
    line = diagnostic.line - 1 + placement.line_offset
    if not diagnostic.column:
        where = placement.whole_line(line)
    else:
        column = diagnostic.column - 1
        if diagnostic.line == 1:
            column += placement.column_offset
        start = placement.position(line, column)
        where = types.Range(start, placement.position(start.line, column + 1))
    return types.Diagnostic(
        range=where,
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


def limit_diagnostic(
    kind: LimitKind, limits: ResourceLimits, placement: Placement
) -> types.Diagnostic:
    return types.Diagnostic(
        range=placement.whole_line(placement.line_offset),
        message=f"Stopped by {describe_limit(kind, limits)} ({kind.value})",
        severity=types.DiagnosticSeverity.Warning,
        source=SOURCE,
        code=f"limit-{kind.value}",
    )


def blocked_connection_diagnostic(blocked: str, placement: Placement) -> types.Diagnostic:
    """A connection the allow-list refused, on the run's first line."""
    return types.Diagnostic(
        range=placement.whole_line(placement.line_offset),
        message=f"Connection to {blocked} blocked — add it to forgeai.network.allow to permit",
        severity=types.DiagnosticSeverity.Information,
        source=SOURCE,
        code="network-blocked",
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
        "network": result.network.model_dump(mode="json") if result.network else None,
    }
