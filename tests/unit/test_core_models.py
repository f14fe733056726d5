"""Limits, requests, limit inference, language lookup and source checks (no sandbox needed)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from forgeai_ls.errors import LimitsError, SourceError, UnknownLanguageError
from forgeai_ls.plugins.catalog import LanguageCatalog
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.source import check_source_text
from forgeai_ls.sandbox import NativeBackend, ResourceLimits, SandboxRequest, StepSpec
from forgeai_ls.sandbox.cgroups import CgroupStats
from forgeai_ls.sandbox.limit_inference import StepEvidence, infer_limits
from forgeai_ls.sandbox.result import LimitKind

LIMITS = ResourceLimits()


def evidence(**changes: object) -> StepEvidence:
    base: dict[str, object] = dict(
        signal=None,
        failed=True,
        timed_out=False,
        output_capped=False,
        cpu_time_ms=10.0,
        stderr=b"",
        cgroup=None,
    )
    return StepEvidence(**{**base, **changes})  # type: ignore[arg-type]


def test_limits_refuse_nonsense() -> None:
    """A negative timeout or a tiny memory limit is a validation error, not a sandbox crash."""
    with pytest.raises(ValidationError):
        ResourceLimits(wall_timeout=-1)
    with pytest.raises(ValidationError):
        ResourceLimits(memory_bytes=1024)


def test_bad_override_is_a_limits_error() -> None:
    """Overrides out of range name the field and carry the stable code."""
    with pytest.raises(LimitsError, match="wall_timeout") as refused:
        LIMITS.with_overrides(wall_timeout=0)
    assert refused.value.code == "FORGEAI-E113"


def test_with_overrides_ignores_none() -> None:
    """Only the given overrides change; None keeps the default."""
    changed = LIMITS.with_overrides(wall_timeout=2.5, memory_bytes=None)
    assert changed.wall_timeout == 2.5
    assert changed.memory_bytes == LIMITS.memory_bytes


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape.py", "a/../../b", ""])
def test_request_file_names_stay_in_the_work_dir(name: str) -> None:
    """Absolute paths and '..' in file names are refused."""
    with pytest.raises(ValidationError):
        SandboxRequest(files={name: b""}, run=StepSpec(argv=("true",), limits=LIMITS))


def test_cgroup_counters_are_exact_evidence() -> None:
    """An OOM kill counted by the cgroup is the memory limit, whatever stderr says."""
    stats = CgroupStats(oom_killed=True, pids_limit_hit=False, peak_memory_bytes=1, cpu_usec=None)
    hit = infer_limits(evidence(signal=signal.SIGKILL, cgroup=stats), LIMITS)
    assert hit == (LimitKind.MEMORY,)


def test_cause_comes_before_consequence() -> None:
    """A fork bomb that then timed out reports processes first, timeout second."""
    stats = CgroupStats(
        oom_killed=False, pids_limit_hit=True, peak_memory_bytes=None, cpu_usec=None
    )
    hit = infer_limits(evidence(timed_out=True, signal=signal.SIGKILL, cgroup=stats), LIMITS)
    assert hit == (LimitKind.PROCESSES, LimitKind.TIMEOUT)


def test_rlimit_mode_reads_the_programs_error() -> None:
    """Without cgroups, a MemoryError or a failed fork on stderr names the limit."""
    assert infer_limits(evidence(stderr=b"MemoryError\n"), LIMITS) == (LimitKind.MEMORY,)
    assert infer_limits(
        evidence(stderr=b"fork: retry: Resource temporarily unavailable"), LIMITS
    ) == (LimitKind.PROCESSES,)
    assert infer_limits(evidence(failed=False, stderr=b"MemoryError\n"), LIMITS) == ()


def test_cpu_limit_from_signal_or_usage() -> None:
    """SIGXCPU, or SIGKILL with the CPU budget spent, is the CPU limit."""
    assert infer_limits(evidence(signal=signal.SIGXCPU), LIMITS) == (LimitKind.CPU,)
    spent = LIMITS.cpu_time * 1000
    assert infer_limits(evidence(signal=signal.SIGKILL, cpu_time_ms=spent), LIMITS) == (
        LimitKind.CPU,
    )


def official_catalog() -> LanguageCatalog:
    manager = PluginManager(NativeBackend(), ManagerConfig(home=Path("/nonexistent-forgeai-home")))
    manager.load_all()
    return manager.catalog()


def test_language_lookup_by_alias_and_extension() -> None:
    """Names, aliases and extensions resolve case-insensitively; unknown ones explain."""
    catalog = official_catalog()
    assert catalog.by_name("PY").spec.name == "python"
    assert catalog.by_name("c++").spec.name == "cpp"
    assert catalog.for_file(Path("x/Main.JAVA")).spec.name == "java"
    with pytest.raises(UnknownLanguageError) as refused:
        catalog.by_name("brainfuck")
    assert refused.value.hint is not None and "python" in refused.value.hint


@given(st.binary(max_size=512))
def test_source_check_accepts_text_or_refuses_with_a_reason(data: bytes) -> None:
    """Any bytes are either returned as the exact text or refused with SourceError."""
    try:
        text = check_source_text(data, "input")
    except SourceError as error:
        assert error.code == "FORGEAI-E103"
        assert b"\x00" in data or "UTF-8" in error.message
    else:
        assert text.encode() == data
