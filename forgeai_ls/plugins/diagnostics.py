"""Turning compiler and runtime error output into file:line:column diagnostics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from forgeai_ls.plugins.language import DiagnosticPattern, LanguageSpec
from forgeai_ls.sandbox import ExecutionResult, StepResult


@dataclass(frozen=True, slots=True)
class Diagnostic:
    line: int
    """1-based, in the source file as run."""
    column: int | None
    message: str
    severity: str
    step: str


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "error"


def _matches(pattern: DiagnosticPattern, text: str, source_name: str) -> list[re.Match[str]]:
    found = []
    for match in re.finditer(pattern.pattern, text, re.MULTILINE):
        groups = match.groupdict()
        file = groups.get("file")
        if file is not None and PurePosixPath(file).name != source_name:
            continue  # a frame in a library, not in the program
        found.append(match)
    if pattern.pick == "first":
        return found[:1]
    if pattern.pick == "last":
        return found[-1:]
    return found


MAX_LOCATION = 2**31 - 1
"""LSP positions are unsigned 32-bit; no real file has more lines or columns."""


def _location_number(text: str) -> int | None:
    """A 1-based line or column as printed by a tool, or None when no file has it."""
    if not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_LOCATION else None


def _from_step(spec: LanguageSpec, step: StepResult, source_name: str) -> list[Diagnostic]:
    # Most tools report on stderr; some (tsc, php) on stdout.
    text = (step.stderr + b"\n" + step.stdout).decode("utf-8", errors="replace")
    # Without a message group, the error's last line is the message: stderr's when it has one.
    fallback = (
        _last_line(step.stderr.decode("utf-8", errors="replace"))
        if step.stderr.strip()
        else _last_line(text)
    )
    diagnostics: list[Diagnostic] = []
    seen: set[tuple[int, int | None]] = set()
    for pattern in spec.diagnostics:
        if pattern.step not in ("any", step.step.value):
            continue
        for match in _matches(pattern, text, source_name):
            groups = match.groupdict()
            line = _location_number(groups["line"])
            column = _location_number(groups["column"]) if groups.get("column") else None
            if line is None or (column is None and groups.get("column")):
                continue  # not a place in the file (a program can print anything)
            if (line, column) in seen:
                continue
            seen.add((line, column))
            diagnostics.append(
                Diagnostic(
                    line=line,
                    column=column,
                    message=(groups.get("message") or fallback).strip(),
                    severity=groups.get("severity") or pattern.severity,
                    step=step.step.value,
                )
            )
    return diagnostics


def extract_diagnostics(
    spec: LanguageSpec, result: ExecutionResult, source_name: str
) -> list[Diagnostic]:
    """Diagnostics of the step that decided the outcome (compile errors, or the run's)."""
    step = result.run or result.compile
    if step is None or (step.exit_code == 0 and step.signal is None):
        return []
    return _from_step(spec, step, source_name)
