"""Shared helpers: run code of a language through the real sandbox."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from forgeai_ls.errors import ToolchainNotFoundError
from forgeai_ls.plugins.executor import LanguageExecutor
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.sandbox import ExecutionResult, NativeBackend

_BACKEND = NativeBackend()
_MANAGER = PluginManager(
    _BACKEND, ManagerConfig(home=Path(tempfile.mkdtemp(prefix="forgeai-home-")))
)
_MANAGER.load_all()


def executor_for(language: str) -> LanguageExecutor:
    """The official plugin's executor for ``language`` (through the real plugin pipeline)."""
    executor, name = _MANAGER.get_executor(language)
    return executor.language(name)


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
