"""A plugin's own test programs (``tests.yaml``), run through the real sandbox."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from forgeai_ls.errors import ManifestError
from forgeai_ls.plugins.bridge import PluginExecutor
from forgeai_ls.plugins.diagnostics import extract_diagnostics

TESTS_NAME = "tests.yaml"


class PluginTestCase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    language: str | None = None
    """Default: the plugin's first language."""
    code: str
    stdin: str | None = None
    stdout: str | None = None
    stderr_contains: str | None = None
    exit_code: int | None = None
    """Default 0, or 'anything but 0' when compile_failed or diagnostic_line is given."""
    compile_failed: bool = False
    diagnostic_line: int | None = None


class _TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[PluginTestCase]


@dataclass
class CaseOutcome:
    case: PluginTestCase
    problems: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems


def read_test_cases(plugin_dir: Path, plugin: str) -> list[PluginTestCase]:
    path = plugin_dir / TESTS_NAME
    try:
        data = yaml.safe_load(path.read_bytes())
        return _TestFile.model_validate(data).cases
    except FileNotFoundError:
        raise ManifestError(
            plugin,
            f"no {TESTS_NAME} in {plugin_dir}",
            hint="add test programs; see docs/plugins.md",
        ) from None
    except (yaml.YAMLError, ValidationError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise ManifestError(plugin, f"{path} is not a valid test file: {reason}") from None


async def run_case(executor: PluginExecutor, case: PluginTestCase) -> CaseOutcome:
    language = case.language or executor.plugin.manifest.languages[0].name
    spec = executor.language(language).spec
    outcome = CaseOutcome(case)
    started = time.monotonic()
    result = await executor.execute(
        language, case.code, stdin=case.stdin.encode() if case.stdin is not None else None
    )
    outcome.duration_ms = (time.monotonic() - started) * 1000
    stdout = result.stdout.decode(errors="replace")
    stderr = result.stderr.decode(errors="replace")
    problems = outcome.problems
    if case.compile_failed != result.compile_failed:
        problems.append(
            "expected the compile step to fail"
            if case.compile_failed
            else f"compile failed: {stderr.strip()[:200]}"
        )
    expects_failure = case.compile_failed or case.diagnostic_line is not None
    if case.exit_code is not None and result.exit_code != case.exit_code:
        problems.append(f"exit code {result.exit_code}, expected {case.exit_code}")
    elif case.exit_code is None and expects_failure and result.exit_code == 0:
        problems.append("exit code 0, expected a failure")
    elif case.exit_code is None and not expects_failure and result.exit_code != 0:
        problems.append(
            f"exit code {result.exit_code}, expected 0 (stderr: {stderr.strip()[:200]})"
        )
    if case.stdout is not None and stdout != case.stdout:
        problems.append(f"stdout {stdout!r}, expected {case.stdout!r}")
    if case.stderr_contains is not None and case.stderr_contains not in stderr:
        problems.append(f"stderr does not contain {case.stderr_contains!r}")
    if case.diagnostic_line is not None:
        source = spec.source_name_for(case.code, None)
        lines = [d.line for d in extract_diagnostics(spec, result, source)]
        if case.diagnostic_line not in lines:
            problems.append(
                f"diagnostics on lines {lines}, expected one on line "
                f"{case.diagnostic_line} (stderr: {stderr.strip()[:200]})"
            )
    return outcome
