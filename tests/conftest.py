"""Shared helpers: run code of a language through the real sandbox.

With FORGEAI_TEST_POOLS=1 the native backend keeps warm pools and every run of a language
that has a warm start is served by a slot that was ready before the run (the sandbox battery
then checks that warm runs behave exactly as cold ones).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from forgeai_ls.errors import ToolchainNotFoundError
from forgeai_ls.plugins.executor import LanguageExecutor
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.project_env import ProjectEnvironment
from forgeai_ls.sandbox import ExecutionResult, NativeBackend, final_result
from forgeai_ls.sandbox.egress_policy import EgressPolicy
from forgeai_ls.sandbox.warm_pool import PoolSettings

# `forgeai run` in tests runs in-process unless a test starts the daemon itself
# (tests/cli/test_run_command.py runs everything both ways; tests/cli/test_daemon.py): a
# daemon per test environment would outlive the test.
os.environ.setdefault("FORGEAI_DAEMON", "0")
# Runs use $VIRTUAL_ENV as their project environment: an activated venv of whoever runs the
# tests must not change what the tests' programs see.
os.environ.pop("VIRTUAL_ENV", None)

POOLS = os.environ.get("FORGEAI_TEST_POOLS") == "1"
_BACKEND = NativeBackend(pools=PoolSettings(size=1) if POOLS else None)
_MANAGER = PluginManager(
    _BACKEND, ManagerConfig(home=Path(tempfile.mkdtemp(prefix="forgeai-home-")))
)
_MANAGER.load_all()


def close_pools() -> None:
    """Stop the warm slots (pool mode): what remains afterwards is what runs left behind."""
    _BACKEND.close()


def executor_for(language: str) -> LanguageExecutor:
    """The official plugin's executor for ``language`` (through the real plugin pipeline)."""
    executor, name = _MANAGER.get_executor(language)
    return executor.language(name)


async def run_code(
    language: str,
    code: str,
    *,
    stdin: bytes | None = None,
    environment: ProjectEnvironment | None = None,
    egress: EgressPolicy | None = None,
    **limit_overrides: object,
) -> ExecutionResult:
    """Run ``code`` (in ``environment``, a project's); skip the test when the language's
    toolchain is not installed."""
    executor = executor_for(language)
    limits = executor.run_limits().with_overrides(**limit_overrides) if limit_overrides else None
    try:
        if POOLS:
            request = executor.build_request(
                code, limits=limits, stdin=stdin, environment=environment, egress=egress
            )
            if _BACKEND.can_warm(request):
                _BACKEND.prewarm(request)
                assert await _BACKEND.wait_warm(request) == 1, "no warm slot became ready"
        return await final_result(
            executor.stream(
                code, limits=limits, stdin=stdin, environment=environment, egress=egress
            )
        )
    except ToolchainNotFoundError as exc:
        pytest.skip(f"{language} toolchain not installed for this user: {exc.message}")
