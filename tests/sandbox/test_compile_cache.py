"""The compile cache: an unchanged program is not compiled again; anything that could change
the compiler's output is a different entry; failures, odd build outputs and damaged entries
are never served."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forgeai_ls.plugins.executor import LanguageExecutor
from forgeai_ls.sandbox import (
    DEFAULT_COMPILE_LIMITS,
    DEFAULT_RUN_LIMITS,
    ExecutionResult,
    NativeBackend,
    SandboxRequest,
    StepSpec,
)
from forgeai_ls.sandbox.compile_cache import CompileCache
from tests.conftest import executor_for

pytestmark = pytest.mark.sandbox

C_PROGRAM = '#include <stdio.h>\nint main(void) { int unused; puts("hi from C"); return 0; }'


def cached_backend(tmp_path: Path) -> tuple[NativeBackend, CompileCache]:
    cache = CompileCache(tmp_path / "compile-cache")
    return NativeBackend(compile_cache=cache), cache


async def run(backend: NativeBackend, language: str, code: str) -> ExecutionResult:
    executor: LanguageExecutor = executor_for(language)
    return await backend.run(executor.build_request(code))


@pytest.mark.parametrize(
    ("language", "code", "expected"),
    [
        ("c", C_PROGRAM, b"hi from C\n"),
        ("rust", 'fn main() { let unused = 1; println!("hi from Rust"); }', b"hi from Rust\n"),
    ],
)
async def test_an_unchanged_program_is_not_compiled_again(
    tmp_path: Path, language: str, code: str, expected: bytes
) -> None:
    backend, _ = cached_backend(tmp_path)
    try:
        first = await run(backend, language, code)
    except Exception as exc:
        pytest.skip(f"{language}: {exc}")
    second = await run(backend, language, code)
    assert first.compile is not None and second.compile is not None
    assert not first.compile.cached and second.compile.cached
    assert first.stdout == second.stdout == expected
    assert second.compile.stderr == first.compile.stderr  # warnings are shown again
    assert b"unused" in second.compile.stderr


async def test_source_flags_and_failures_make_new_entries(tmp_path: Path) -> None:
    backend, _ = cached_backend(tmp_path)
    await run(backend, "c", C_PROGRAM)
    changed = await run(backend, "c", C_PROGRAM.replace("hi from C", "changed"))
    assert changed.compile is not None and not changed.compile.cached
    assert changed.stdout == b"changed\n"

    executor = executor_for("c")
    request = executor.build_request(C_PROGRAM)
    assert request.compile is not None
    flags = request.compile.argv
    other_flags = request.model_copy(
        update={"compile": request.compile.model_copy(update={"argv": (*flags, "-O2")})}
    )
    result = await backend.run(other_flags)
    assert result.compile is not None and not result.compile.cached

    broken = "int main(void) { return missing; }"
    for _ in range(2):  # a failed compile is never stored
        failed = await run(backend, "c", broken)
        assert failed.compile is not None and failed.compile_failed
        assert not failed.compile.cached


async def test_a_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    backend, cache = cached_backend(tmp_path)
    await run(backend, "c", C_PROGRAM)
    for meta in cache.directory.glob("*/*/result.json"):
        meta.write_text("{not json")
    result = await run(backend, "c", C_PROGRAM)
    assert result.compile is not None and not result.compile.cached
    assert result.stdout == b"hi from C\n"


async def test_links_are_stored_as_links_and_special_files_not_at_all(tmp_path: Path) -> None:
    """A build directory's link is copied as a link, never followed on the host; one with a
    FIFO in it is not stored."""
    backend, cache = cached_backend(tmp_path)

    def request(script: str) -> SandboxRequest:
        return SandboxRequest(
            files={"main.sh": b"ls -la /build"},
            compile=StepSpec(argv=("sh", "-c", script), limits=DEFAULT_COMPILE_LIMITS),
            run=StepSpec(argv=("sh", "/work/main.sh"), limits=DEFAULT_RUN_LIMITS),
        )

    linked = request("ln -s /etc/hostname /build/link && echo data > /build/file")
    await backend.run(linked)
    (entry,) = cache.directory.glob("*/*/build")
    assert (entry / "link").is_symlink() and os.readlink(entry / "link") == "/etc/hostname"
    again = await backend.run(linked)
    assert again.compile is not None and again.compile.cached
    assert b"link -> /etc/hostname" in again.stdout

    fifo = request("mkfifo /build/pipe")
    await backend.run(fifo)
    result = await backend.run(fifo)
    assert result.compile is not None and not result.compile.cached
