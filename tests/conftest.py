"""Shared helpers: run code of a language through the real sandbox."""

from __future__ import annotations

import pytest

from forgeai_ls.errors import ToolchainNotFoundError
from forgeai_ls.plugins.catalog import builtin_catalog
from forgeai_ls.plugins.executor import LanguageExecutor
from forgeai_ls.sandbox import ExecutionResult, NativeBackend

_BACKEND = NativeBackend()
CATALOG = builtin_catalog()


def executor_for(language: str) -> LanguageExecutor:
    entry = CATALOG.by_name(language)
    return LanguageExecutor(entry.spec, entry.plugin, _BACKEND)


async def run_code(
    language: str, code: str, *, stdin: bytes | None = None, **limit_overrides: object
) -> ExecutionResult:
    """Run ``code``; skip the test when the language's toolchain is not installed."""
    executor = executor_for(language)
    limits = executor.run_limits().with_overrides(**limit_overrides) if limit_overrides else None
    try:
        return await executor.execute(language, code, limits=limits, stdin=stdin)
    except ToolchainNotFoundError as exc:
        pytest.skip(f"{language} toolchain not installed for this user: {exc.message}")
