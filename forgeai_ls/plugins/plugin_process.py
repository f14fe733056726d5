"""Code plugins run in a process of their own, in a sandbox, one per call (see ``plugin_host``).

``CodePluginExecutor`` has the seed's Executor interface. Each call starts the plugin's host
process in a fresh native sandbox (no network, its own uid, limits below) with the plugin's
verified files, sends it ``start`` and serves what it asks for: when the plugin runs code
through ``config.declarative(language)``, ForgeAI runs it with the manifest's declarative
executor — in a sandbox of its own, within the limits of the call — and streams the events
back. Nothing of the plugin is imported or executed in ForgeAI's process.

A host that exits without an answer (a crash), outlives its wall clock (a hang), writes more
than its output limit (a flood), or sends a line that is not the protocol (garbage) is stopped
and reported as ``PluginProcessError`` naming the plugin; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from forgeai_ls.errors import (
    ConstructorFailedError,
    ConstructorMissingError,
    ConstructorSignatureError,
    ForgeAIError,
    PluginError,
    PluginLoadError,
    PluginProcessError,
)
from forgeai_ls.plugins.executor import LanguageExecutor, SandboxBackend, StdinInput
from forgeai_ls.plugins.loader import VerifiedPlugin
from forgeai_ls.sandbox import (
    ExecutionEvent,
    ExecutionFinished,
    ExecutionResult,
    OutputChunk,
    ResourceLimits,
)
from forgeai_ls.sandbox.request import SandboxRequest, StepSpec
from forgeai_ls.sandbox.result import StepName

log = logging.getLogger(__name__)

PROTOCOL = 1
HOST_SCRIPT = Path(__file__).with_name("plugin_host.py")
HOST_NAME = "_forgeai_plugin_host.py"
PACKAGE = "forgeai_plugin"
MAX_LINE = 16 * 1024 * 1024
_STDERR_TAIL = 2000
MIB = 1024 * 1024

_ERRORS: dict[str, type[PluginError]] = {
    "import": PluginLoadError,
    "constructor-missing": ConstructorMissingError,
    "constructor-signature": ConstructorSignatureError,
    "constructor-failed": ConstructorFailedError,
}


def host_limits(run: ResourceLimits) -> ResourceLimits:
    """The plugin process's own limits: room for the runs it asks for (each in a sandbox of
    its own, within ``run``) and for their output passing through it."""
    return ResourceLimits(
        wall_timeout=min(3600.0, 2 * run.wall_timeout + 5),
        cpu_time=30.0,
        memory_bytes=256 * MIB,
        processes=32,
        output_bytes=3 * run.output_bytes + MIB,
        network=False,
    )


def within(requested: Mapping[str, Any] | None, ceiling: ResourceLimits) -> ResourceLimits:
    """Limits a plugin asked for, never above the user's: each number at most the ceiling's,
    network only where the user allowed it."""
    if not requested:
        return ceiling
    try:
        asked = ceiling.model_validate({**ceiling.model_dump(), **requested})
    except ValidationError as exc:
        raise ValueError(f"invalid limits: {exc.errors()[0]['msg']}") from None
    lowered: dict[str, Any] = {}
    for name, value in asked.model_dump().items():
        limit = getattr(ceiling, name)
        lowered[name] = (value and limit) if isinstance(value, bool) else min(value, limit)
    return ResourceLimits.model_validate(lowered)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def result_to_wire(result: ExecutionResult) -> dict[str, Any]:
    wire: dict[str, Any] = result.model_dump(mode="python")

    def encode(fields: dict[str, Any]) -> dict[str, Any]:
        for key in ("stdout", "stderr"):
            fields[key] = _b64(fields[key])
        fields["limits_hit"] = [str(kind) for kind in fields["limits_hit"]]
        for key in ("limit", "step"):
            if fields.get(key) is not None:
                fields[key] = str(fields[key])
        return fields

    encode(wire)
    for step in ("compile", "run"):
        if wire.get(step) is not None:
            encode(wire[step])
    return wire


def result_from_wire(wire: Any) -> ExecutionResult:
    if not isinstance(wire, dict):
        raise ValueError("a result must be an object")
    fields = dict(wire)

    def decode(part: dict[str, Any]) -> dict[str, Any]:
        for key in ("stdout", "stderr"):
            if isinstance(part.get(key), str):
                part[key] = base64.b64decode(part[key], validate=True)
        return part

    decode(fields)
    for step in ("compile", "run"):
        if isinstance(fields.get(step), dict):
            fields[step] = decode(dict(fields[step]))
    return ExecutionResult.model_validate(fields)


class _Done(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class CodePluginExecutor:
    """The Executor of a code plugin: every method is a call into its sandboxed process."""

    def __init__(
        self,
        plugin: VerifiedPlugin,
        host_backend: SandboxBackend,
        declarative: Mapping[str, LanguageExecutor],
    ) -> None:
        assert plugin.manifest.entry_point is not None and plugin.code is not None
        self.plugin = plugin
        self.host_backend = host_backend
        self.declarative = dict(declarative)
        files = {f"{PACKAGE}/{name}": data for name, data in plugin.code.items()}
        files.setdefault(f"{PACKAGE}/__init__.py", b"")
        files[HOST_NAME] = HOST_SCRIPT.read_bytes()
        self._files = files
        self._languages: list[str] | None = None

    # -- the Executor interface -----------------------------------------------------------

    async def supported_languages_async(self) -> list[str]:
        """Asked of the plugin once (its constructor runs in the sandbox), then kept."""
        if self._languages is None:
            value = await self._value("supported_languages", {}, self._default_limits())
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self._broken(f"supported_languages returned {value!r}")
            self._languages = value
        return list(self._languages)

    def supported_languages(self) -> list[str]:
        if self._languages is None:
            return list(self.declarative)
        return list(self._languages)

    async def execute(
        self,
        language: str,
        code: str,
        *,
        limits: ResourceLimits | None = None,
        stdin: bytes | None = None,
    ) -> ExecutionResult:
        ceiling = limits or self._default_limits(language)
        params = {"language": language, "code": code, "limits": ceiling.model_dump(),
                  "stdin": _b64(stdin) if stdin is not None else None}  # fmt: skip
        return self._as_result(await self._value("execute", params, ceiling))

    async def execute_file(
        self,
        path: Path,
        language: str | None = None,
        *,
        limits: ResourceLimits | None = None,
        stdin: bytes | None = None,
    ) -> ExecutionResult:
        ceiling = limits or self._default_limits(language)
        params = {"file_name": path.name, "content": _b64(path.read_bytes()),
                  "limits": ceiling.model_dump(),
                  "stdin": _b64(stdin) if stdin is not None else None}  # fmt: skip
        return self._as_result(await self._value("execute_file", params, ceiling))

    async def stream(
        self,
        language: str,
        code: str,
        *,
        file_name: str | None = None,
        limits: ResourceLimits | None = None,
        stdin: StdinInput = None,
    ) -> AsyncGenerator[ExecutionEvent, None]:
        ceiling = limits or self._default_limits(language)
        given = stdin if isinstance(stdin, bytes) else None
        params = {"language": language, "code": code, "file_name": file_name,
                  "limits": ceiling.model_dump(),
                  "stdin": _b64(given) if given is not None else None}  # fmt: skip
        async with contextlib.aclosing(self._converse("stream", params, ceiling)) as events:
            async for event in events:
                if isinstance(event, _Done):
                    yield ExecutionFinished(self._as_result(event.value))
                    return
                yield event

    # -- one call ---------------------------------------------------------------------------

    def _default_limits(self, language: str | None = None) -> ResourceLimits:
        executor = self.declarative.get(language or "") or next(iter(self.declarative.values()))
        return executor.run_limits()

    def _as_result(self, value: Any) -> ExecutionResult:
        try:
            return result_from_wire(value)
        except (ValueError, ValidationError) as exc:
            raise self._broken(f"returned an invalid result ({str(exc).splitlines()[0]})") from None

    def _broken(self, what: str) -> PluginProcessError:
        return PluginProcessError(
            self.plugin.name,
            f"its process {what}; it was stopped",
            hint="report it to the plugin's author, or remove the plugin "
            f"('forgeai plugin remove {self.plugin.name}')",
        )

    async def _value(self, method: str, params: dict[str, Any], ceiling: ResourceLimits) -> Any:
        async with contextlib.aclosing(self._converse(method, params, ceiling)) as events:
            async for event in events:
                if isinstance(event, _Done):
                    return event.value
        raise self._broken("ended without an answer")

    async def _converse(
        self, method: str, params: dict[str, Any], ceiling: ResourceLimits
    ) -> AsyncGenerator[ExecutionEvent | _Done, None]:
        """Start the host, send ``start``, serve its calls; yields the plugin's own events
        (a stream's output), then ``_Done`` with the method's value."""
        outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

        def send(message: dict[str, Any]) -> None:
            outgoing.put_nowait(json.dumps(message, separators=(",", ":")).encode() + b"\n")

        async def stdin_stream() -> AsyncIterator[bytes]:
            while (item := await outgoing.get()) is not None:
                yield item

        manifest = self.plugin.manifest
        send({"type": "start", "protocol": PROTOCOL, "entry_point": manifest.entry_point,
              "manifest": manifest.model_dump(mode="json"), "method": method,
              "params": params})  # fmt: skip
        limits = host_limits(ceiling)
        request = SandboxRequest(
            files={},
            readonly_files=self._files,
            run=StepSpec(argv=("python3", "-I", "-S", f"/work/{HOST_NAME}"), limits=limits),
        )
        buffer = bytearray()
        stderr_tail = bytearray()
        calls: set[asyncio.Task[None]] = set()
        events = self.host_backend.stream(request, stdin_stream=stdin_stream())
        try:
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    if isinstance(event, OutputChunk) and event.stream == "stderr":
                        stderr_tail = (stderr_tail + event.data)[-_STDERR_TAIL:]
                    elif isinstance(event, OutputChunk):
                        buffer += event.data
                        while (end := buffer.find(b"\n")) >= 0:
                            line, buffer = bytes(buffer[:end]), buffer[end + 1 :]
                            message = self._parse(line)
                            kind = message.get("type")
                            if kind == "call":
                                task = asyncio.create_task(self._serve(message, ceiling, send))
                                calls.add(task)
                                task.add_done_callback(calls.discard)
                            elif kind == "event":
                                yield self._chunk(message)
                            elif kind == "done":
                                yield _Done(message.get("value"))
                                return
                            elif kind == "error":
                                raise self._refusal(message)
                            else:
                                raise self._broken(f"sent an unknown message {kind!r}")
                        if len(buffer) > MAX_LINE:
                            raise self._broken(f"sent a line longer than {MAX_LINE} bytes")
                    elif isinstance(event, ExecutionFinished):
                        raise self._ended(event.result, bytes(stderr_tail))
        finally:
            for task in calls:
                task.cancel()
            outgoing.put_nowait(None)
        raise self._broken("ended without an answer")

    def _parse(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except ValueError:
            raise self._broken(f"spoke garbage: {line[:80]!r}") from None
        if not isinstance(message, dict):
            raise self._broken(f"spoke garbage: {line[:80]!r}")
        return message

    def _chunk(self, message: dict[str, Any]) -> OutputChunk:
        try:
            step = StepName(message.get("step", "run"))
            stream = message.get("stream")
            if stream not in ("stdout", "stderr"):
                raise ValueError(stream)
            return OutputChunk(step, stream, base64.b64decode(message["data"], validate=True))
        except (KeyError, ValueError, TypeError):
            raise self._broken("sent a malformed output event") from None

    def _refusal(self, message: dict[str, Any]) -> PluginError:
        text = str(message.get("message", "failed"))[:2000]
        if message.get("kind") == "bad-result":
            return self._broken(f"returned an invalid result ({text})")
        error = _ERRORS.get(str(message.get("kind")))
        if error is not None:
            return error(self.plugin.name, text)
        return PluginProcessError(self.plugin.name, f"failed: {text}")

    def _ended(self, result: ExecutionResult, stderr: bytes) -> PluginProcessError:
        if result.timed_out:
            what = f"did not answer within its wall clock ({result.duration_ms / 1000:.0f} s)"
        elif result.limit is not None:
            what = f"exceeded its {result.limit.value} limit"
        else:
            what = f"exited (status {result.exit_code}, signal {result.signal}) without answering"
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return self._broken(what + (f": {last[0][:300]}" if last[0] else ""))

    async def _serve(self, call: dict[str, Any], ceiling: ResourceLimits, send: Any) -> None:
        """Run code for the plugin, in a sandbox of its own, within the user's limits."""
        number = call.get("call")
        try:
            language = str(call.get("language"))
            executor = self.declarative.get(language)
            if executor is None:
                raise ValueError(f"the manifest declares no language {language!r}")
            limits = within(call.get("limits"), ceiling)
            stdin = call.get("stdin")
            events = executor.stream(
                str(call.get("code", "")),
                file_name=call.get("file_name"),
                limits=limits,
                stdin=base64.b64decode(stdin) if isinstance(stdin, str) else None,
            )
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    if isinstance(event, OutputChunk):
                        send({"type": "event", "call": number, "step": event.step.value,
                              "stream": event.stream, "data": _b64(event.data)})  # fmt: skip
                    elif isinstance(event, ExecutionFinished):
                        send({"type": "result", "call": number,
                              "result": result_to_wire(event.result)})  # fmt: skip
                        return
        except (ForgeAIError, ValueError, TypeError) as exc:
            send({"type": "failed", "call": number, "message": str(exc)})
