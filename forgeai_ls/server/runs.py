"""Runs started from the editor: streaming to the client, progress, cancellation, diagnostics.

Each run has an id. Its output goes to the client as ``forgeai/output`` notifications, batched
(at most every 20 ms or 32 KiB) so a flood never freezes the editor; the end is announced by
``forgeai/runFinished``; the executeCommand request resolves with the same summary plus the
captured (capped) stdout and stderr. A run is stopped by cancelling the request, cancelling
its work-done progress, ``forgeai.cancelRun``, or a newer run of the same document.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from forgeai_ls.artifact_files import SavedArtifact
from forgeai_ls.dependencies.declared import DeclaredDependencies
from forgeai_ls.dependencies.for_run import DependencyReport
from forgeai_ls.plugins.bridge import PluginExecutor
from forgeai_ls.plugins.diagnostics import extract_diagnostics
from forgeai_ls.project_env import ProjectEnvironment
from forgeai_ls.sandbox import ExecutionFinished, ExecutionResult, OutputChunk, ResourceLimits
from forgeai_ls.sandbox.egress_policy import EgressPolicy
from forgeai_ls.server.convert import (
    blocked_connection_diagnostic,
    limit_diagnostic,
    run_summary,
    to_lsp_diagnostic,
)
from forgeai_ls.server.placement import Placement

if TYPE_CHECKING:
    from forgeai_ls.server.server import ForgeAIServer

log = logging.getLogger(__name__)

STARTED_NOTIFICATION = "forgeai/runStarted"
OUTPUT_NOTIFICATION = "forgeai/output"
FINISHED_NOTIFICATION = "forgeai/runFinished"
_FLUSH_SECONDS = 0.02
_FLUSH_BYTES = 32 * 1024


@dataclass
class RunTarget:
    """What to run and where its diagnostics go in the document."""

    uri: str
    executor: PluginExecutor
    language: str
    code: str
    file_name: str | None
    limits: ResourceLimits
    placement: Placement
    extra_files: dict[str, bytes] = field(default_factory=dict)
    environment: ProjectEnvironment | None = None
    egress: EgressPolicy | None = None
    declared: DeclaredDependencies | None = None
    """PEP 723 dependencies, installed (or found in the cache) before the run starts."""


@dataclass
class _ActiveRun:
    run_id: str
    uri: str
    task: asyncio.Task[ExecutionResult] | None = None
    progress_token: str | None = None


class _OutputBatcher:
    """Collects output and sends it as few notifications as keep the editor live."""

    def __init__(self, server: ForgeAIServer, run_id: str, uri: str) -> None:
        self.server = server
        self.run_id = run_id
        self.uri = uri
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for name in ("stdout", "stderr")
        }
        self._pending: list[tuple[str, str]] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, chunk: OutputChunk) -> None:
        text = self._decoders[chunk.stream].decode(chunk.data)
        if not text:
            return
        if self._pending and self._pending[-1][0] == chunk.stream:
            self._pending[-1] = (chunk.stream, self._pending[-1][1] + text)
        else:
            self._pending.append((chunk.stream, text))
        self._pending_bytes += len(chunk.data)
        if self._pending_bytes >= _FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(_FLUSH_SECONDS, self.flush)

    def flush(self, *, final: bool = False) -> None:
        """Send what is pending; ``final`` also sends a trailing incomplete UTF-8 sequence."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if final:
            for stream, decoder in self._decoders.items():
                tail = decoder.decode(b"", final=True)
                if tail:
                    self._pending.append((stream, tail))
        for stream, text in self._pending:
            self.server.protocol.notify(
                OUTPUT_NOTIFICATION,
                {"runId": self.run_id, "uri": self.uri, "stream": stream, "text": text},
            )
        self._pending = []
        self._pending_bytes = 0


def artifact_store() -> Path:
    """Where the language server keeps runs' files out: FORGEAI_HOME/artifacts/RUN/."""
    from forgeai_ls.home import forgeai_home

    return forgeai_home() / "artifacts"


ARTIFACT_RUNS_KEPT = 50
ARTIFACT_STORE_BYTES = 512 * 1024 * 1024


class RunRegistry:
    def __init__(self, server: ForgeAIServer) -> None:
        self.server = server
        self._runs: dict[str, _ActiveRun] = {}
        self.artifacts: dict[str, dict[str, SavedArtifact]] = {}
        """The files out of recent runs, by run id and name (``forgeai.getArtifact``)."""

    def cancel(self, run_id: str) -> bool:
        run = self._runs.get(run_id)
        if run is None or run.task is None:
            return False
        run.task.cancel()
        return True

    def cancel_by_progress(self, token: str) -> None:
        for run in self._runs.values():
            if run.progress_token == token and run.task is not None:
                run.task.cancel()

    async def stop_all(self, seconds: float = 5.0) -> None:
        """Cancel every run and wait until each has been reported and answered."""
        for run in list(self._runs.values()):
            if run.task is not None:
                run.task.cancel()
        deadline = time.monotonic() + seconds
        while self._runs and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _stop_runs_of(self, uri: str) -> None:
        for run in list(self._runs.values()):
            if run.uri == uri and run.task is not None:
                run.task.cancel()

    async def execute(self, target: RunTarget) -> dict[str, Any]:
        """Run ``target`` to its end (or cancellation) and return the request's result."""
        if self.server.settings.replace_previous_run:
            self._stop_runs_of(target.uri)
        run = _ActiveRun(run_id=uuid.uuid4().hex[:12], uri=target.uri)
        self._runs[run.run_id] = run
        self.server.diagnostics.clear(target.uri)
        batcher = _OutputBatcher(self.server, run.run_id, target.uri)
        dependencies = None
        if target.declared is not None:
            try:
                target.environment, dependencies = await self._install(target, run)
            except BaseException:
                self._runs.pop(run.run_id, None)
                raise
        environment = (
            target.environment.model_dump(mode="json", by_alias=True)
            if target.environment is not None
            else None
        )
        self.server.protocol.notify(
            STARTED_NOTIFICATION,
            {"runId": run.run_id, "uri": target.uri, "environment": environment},
        )
        started = time.monotonic()
        await self._begin_progress(run, target)
        run.task = asyncio.ensure_future(self._consume(target, batcher))
        try:
            result = await run.task
        except asyncio.CancelledError:
            batcher.flush(final=True)
            summary = {
                "runId": run.run_id,
                "uri": target.uri,
                "exitCode": None,
                "signal": 9,
                "timedOut": False,
                "limit": None,
                "truncated": False,
                "durationMs": round((time.monotonic() - started) * 1000, 3),
                "cancelled": True,
                "network": None,
                "environment": environment,
            }
            self.server.protocol.notify(FINISHED_NOTIFICATION, summary)
            self._end_progress(run, "cancelled")
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the request itself was cancelled: let pygls answer it
            return {**summary, "stdout": "", "stderr": ""}
        finally:
            self._runs.pop(run.run_id, None)
        batcher.flush(final=True)
        self._publish_diagnostics(target, result)
        summary = {
            **run_summary(run.run_id, target.uri, result),
            "cancelled": False,
            "environment": environment,
            "dependencies": dependencies.model_dump(mode="json") if dependencies else None,
            **await self._save_artifacts(run.run_id, result),
        }
        self.server.protocol.notify(FINISHED_NOTIFICATION, summary)
        self._end_progress(run, f"exit {result.exit_code if result.exit_code is not None else '-'}")
        return {
            **summary,
            "stdout": result.stdout.decode(errors="replace"),
            "stderr": result.stderr.decode(errors="replace"),
            "compileFailed": result.compile_failed,
        }

    async def _save_artifacts(self, run_id: str, result: ExecutionResult) -> dict[str, Any]:
        """The run's files out, saved under the artifact store (``artifacts: [{name, size,
        mime, path}]``, ``artifactsSkipped``); older runs' files are pruned."""
        from forgeai_ls.artifact_files import prune_runs, save_artifacts

        found = result.artifacts
        if found is None or found.empty:
            return {"artifacts": [], "artifactsSkipped": []}
        store = artifact_store()
        saved = await asyncio.to_thread(save_artifacts, found, store / run_id)
        await asyncio.to_thread(
            prune_runs, store, keep_runs=ARTIFACT_RUNS_KEPT, max_bytes=ARTIFACT_STORE_BYTES
        )
        self.artifacts[run_id] = {item.name: item for item in saved}
        while len(self.artifacts) > ARTIFACT_RUNS_KEPT:
            self.artifacts.pop(next(iter(self.artifacts)))
        return {
            "artifacts": [item.model_dump(mode="json") for item in saved],
            "artifactsSkipped": list(found.skipped),
        }

    async def _install(
        self, target: RunTarget, run: _ActiveRun
    ) -> tuple[ProjectEnvironment, DependencyReport]:
        """The run's dependencies, with a work-done progress while they install; a failure
        fails the command (the run does not start)."""
        from forgeai_ls.dependencies.for_run import dependency_environment
        from forgeai_ls.errors import ForgeAIError
        from forgeai_ls.sandbox import NativeBackend
        from forgeai_ls.server.rpc import rpc_error

        assert target.declared is not None
        backend = target.executor.backend
        assert isinstance(backend, NativeBackend)
        token = f"forgeai-install-{run.run_id}"
        can_show = self._can_show_progress() and await self._create_token(token)
        shown = False

        def progress(text: str) -> None:
            nonlocal shown
            if can_show and not shown:
                shown = True
                self.server.work_done_progress.begin(
                    token, types.WorkDoneProgressBegin(title="ForgeAI", message=f"{text}...")
                )
            self.server.protocol.notify(
                "window/logMessage",
                types.LogMessageParams(type=types.MessageType.Info, message=f"ForgeAI: {text}"),
            )

        try:
            return await dependency_environment(
                target.declared, backend, base=target.environment, progress=progress
            )
        except ForgeAIError as error:
            raise rpc_error(error) from None
        finally:
            if shown:
                self.server.work_done_progress.end(token, types.WorkDoneProgressEnd())

    def _can_show_progress(self) -> bool:
        capabilities = self.server.client_capabilities
        return bool(capabilities.window and capabilities.window.work_done_progress)

    async def _create_token(self, token: str) -> bool:
        try:
            await asyncio.wait_for(self.server.work_done_progress.create_async(token), 2)
        except (TimeoutError, Exception) as exc:  # a client that refuses still gets the run
            log.debug("no progress %s: %s", token, exc)
            return False
        return True

    async def _consume(self, target: RunTarget, batcher: _OutputBatcher) -> ExecutionResult:
        events = target.executor.stream(
            target.language,
            target.code,
            file_name=target.file_name,
            limits=target.limits,
            extra_files=target.extra_files,
            environment=target.environment,
            egress=target.egress,
        )
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, OutputChunk):
                    batcher.add(event)
                elif isinstance(event, ExecutionFinished):
                    return event.result
        raise RuntimeError("the sandbox ended without a result")

    def _publish_diagnostics(self, target: RunTarget, result: ExecutionResult) -> None:
        spec = target.executor.language(target.language).spec
        source_name = target.file_name or spec.source_name_for(target.code, None)
        found = [
            to_lsp_diagnostic(d, target.placement)
            for d in extract_diagnostics(spec, result, source_name)
        ]
        if result.limit is not None:
            found.append(limit_diagnostic(result.limit, target.limits, target.placement))
        if result.network is not None:
            found += [
                blocked_connection_diagnostic(blocked, target.placement)
                for blocked in result.network.denied
            ]
        self.server.diagnostics.publish(target.uri, found)

    async def _begin_progress(self, run: _ActiveRun, target: RunTarget) -> None:
        token = f"forgeai-run-{run.run_id}"
        if not self._can_show_progress() or not await self._create_token(token):
            return
        run.progress_token = token
        self.server.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title=f"ForgeAI: running {target.language}",
                cancellable=True,
                message=target.file_name or "selection",
            ),
        )

    def _end_progress(self, run: _ActiveRun, message: str) -> None:
        if run.progress_token is not None:
            self.server.work_done_progress.end(
                run.progress_token, types.WorkDoneProgressEnd(message=message)
            )
