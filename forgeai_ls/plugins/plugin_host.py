"""The process a code plugin runs in: inside a sandbox, one per call, never in ForgeAI.

ForgeAI starts it (``python3 -I -S /work/_forgeai_plugin_host.py``) in a sandbox of its own —
no network, its own uid, limits — with the plugin's verified files under
``/work/forgeai_plugin/``, and talks to it over its stdin and stdout, one JSON object per line
(see ``plugin_protocol`` for the ForgeAI side, where each message is defined):

- ForgeAI sends ``start``: the entry point, the manifest, and the method to call
  (``supported_languages``, ``execute``, ``execute_file`` or ``stream``) with its arguments;
- the host imports the plugin, calls its constructor with a ``config``, and calls the method;
- when the plugin runs code — through ``config.declarative(language)``, the executor ForgeAI
  would use for the manifest's language — the host sends ``call`` and ForgeAI runs it in a
  sandbox of its own, answering with ``event`` lines and a ``result`` (or ``failed``);
- the host answers with ``event`` lines (a ``stream``), then ``done`` with the method's
  value, or ``error``.

Bytes travel base64-encoded. What the plugin prints goes to stderr, never into the protocol.
This file is standard library only: nothing of ForgeAI is importable in the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import sys
import threading
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PROTOCOL = 1
WORK = "/work"
PACKAGE = "forgeai_plugin"
EXECUTOR_METHODS = ("execute", "execute_file", "supported_languages")

_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
os.dup2(2, 1)  # the plugin's own prints: stderr, never the protocol
sys.stdout = sys.stderr


def _send(message: dict[str, Any]) -> None:
    _out.write(json.dumps(message, separators=(",", ":")) + "\n")
    _out.flush()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class Result:
    """An execution's result as the plugin sees it: ForgeAI's fields as attributes
    (``exit_code``, ``stdout`` and ``stderr`` as bytes, ``limit``...)."""

    def __init__(self, wire: dict[str, Any]) -> None:
        self.wire = wire
        for key, value in wire.items():
            setattr(self, key, _unb64(value) if key in ("stdout", "stderr") else value)

    def __repr__(self) -> str:
        return f"Result(exit_code={self.wire.get('exit_code')!r})"


class Chunk:
    """Output while a program runs (what ForgeAI calls an OutputChunk)."""

    def __init__(self, step: str, stream: str, data: bytes) -> None:
        self.step, self.stream, self.data = step, stream, data


class Finished:
    """The last event of an execution (ExecutionFinished)."""

    def __init__(self, result: Result) -> None:
        self.result = result


class _Host:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.calls: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.next_call = 0
        self.start: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self.loop.call_soon_threadsafe(self._dispatch, message)
        self.loop.call_soon_threadsafe(self._dispatch, {"type": "eof"})

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "start" and not self.start.done():
            self.start.set_result(message)
        elif message.get("type") == "eof":
            if not self.start.done():
                self.start.set_exception(EOFError("ForgeAI closed the channel"))
            for queue in self.calls.values():
                queue.put_nowait({"type": "failed", "message": "ForgeAI closed the channel"})
        else:
            waiting = self.calls.get(message.get("call", -1))
            if waiting is not None:
                waiting.put_nowait(message)

    async def run_code(self, params: dict[str, Any]) -> Any:
        """Ask ForgeAI to run code; yields Chunk events, then a Finished."""
        self.next_call += 1
        call = self.next_call
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.calls[call] = queue
        _send({"type": "call", "call": call, **params})
        try:
            while True:
                message = await queue.get()
                kind = message.get("type")
                if kind == "event":
                    yield Chunk(message["step"], message["stream"], _unb64(message["data"]) or b"")
                elif kind == "result":
                    yield Finished(Result(message["result"]))
                    return
                else:
                    raise RuntimeError(f"ForgeAI could not run the code: {message.get('message')}")
        finally:
            del self.calls[call]


class Declarative:
    """``config.declarative(language)``: runs code the way the manifest describes, in
    ForgeAI's sandbox. Has the whole Executor interface, so a constructor may return it."""

    def __init__(self, host: _Host, language: str) -> None:
        self._host = host
        self._language = language

    def supported_languages(self) -> list[str]:
        return [self._language]

    def stream(
        self,
        language: str | None = None,
        code: str = "",
        *,
        file_name: str | None = None,
        limits: Any = None,
        stdin: bytes | None = None,
    ) -> Any:
        params = {
            "language": language or self._language,
            "code": code,
            "file_name": file_name,
            "limits": _limits(limits),
            "stdin": _b64(stdin),
        }
        return self._host.run_code(params)

    async def execute(
        self, language: str | None = None, code: str = "", *, limits: Any = None,
        stdin: bytes | None = None,
    ) -> Result:  # fmt: skip
        async for event in self.stream(language, code, limits=limits, stdin=stdin):
            if isinstance(event, Finished):
                return event.result
        raise RuntimeError("the execution ended without a result")

    async def execute_file(
        self, path: Any, language: str | None = None, *, limits: Any = None,
        stdin: bytes | None = None,
    ) -> Result:  # fmt: skip
        file = Path(path)
        code = file.read_text()
        async for event in self.stream(
            language, code, file_name=file.name, limits=limits, stdin=stdin
        ):
            if isinstance(event, Finished):
                return event.result
        raise RuntimeError("the execution ended without a result")


def _limits(limits: Any) -> dict[str, Any] | None:
    if limits is None or isinstance(limits, dict):
        return limits
    wire = getattr(limits, "wire", None)
    return wire if isinstance(wire, dict) else None


def _namespace(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{key: _namespace(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_namespace(item) for item in value]
    return value


class Config:
    """What the plugin's constructor receives."""

    def __init__(self, host: _Host, manifest: dict[str, Any]) -> None:
        self.manifest = _namespace(manifest)
        self.languages = {spec["name"]: _namespace(spec) for spec in manifest.get("languages", [])}
        self._host = host

    def declarative(self, language: str) -> Declarative:
        if language not in self.languages:
            raise KeyError(f"the manifest declares no language {language!r}")
        return Declarative(self._host, language)


class PluginError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _construct(host: _Host, start: dict[str, Any]) -> Any:
    module_name, function = start["entry_point"].split(":")
    sys.path.insert(0, WORK)
    try:
        module = __import__(f"{PACKAGE}.{module_name}", fromlist=["_"])
    except BaseException as exc:
        raise PluginError("import", f"importing {module_name} failed: {_short(exc)}") from None
    constructor = getattr(module, function, None)
    if not callable(constructor):
        state = "missing" if constructor is None else "not callable"
        raise PluginError(
            "constructor-missing",
            f"entry_point names '{function}' in {module_name}, which is {state}",
        )
    config = Config(host, start["manifest"])
    try:
        inspect.signature(constructor).bind(config)
    except TypeError as exc:
        raise PluginError(
            "constructor-signature",
            f"constructor {function}{inspect.signature(constructor)} cannot be called with one "
            f"config argument ({exc})",
        ) from None
    except ValueError:
        pass  # no signature to inspect (a builtin): call it and see
    try:
        executor = constructor(config)
    except BaseException as exc:
        raise PluginError("constructor-failed", f"constructor raised {_short(exc)}") from None
    missing = [name for name in EXECUTOR_METHODS if not callable(getattr(executor, name, None))]
    if missing:
        raise PluginError(
            "constructor-signature",
            f"the constructor returned {type(executor).__name__}, which lacks {', '.join(missing)}",
        )
    return executor


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _result_wire(value: Any) -> dict[str, Any]:
    if isinstance(value, Result):
        return value.wire
    if isinstance(value, dict):
        wire = dict(value)
        for key in ("stdout", "stderr"):
            if isinstance(wire.get(key), bytes | bytearray):
                wire[key] = _b64(bytes(wire[key]))
        return wire
    raise PluginError("bad-result", f"a {type(value).__name__}, not a result object or dict")


async def _call(host: _Host, executor: Any, start: dict[str, Any]) -> Any:
    method, params = start["method"], start.get("params", {})
    if method == "supported_languages":
        return [str(name) for name in executor.supported_languages()]
    limits, stdin = params.get("limits"), _unb64(params.get("stdin"))
    if method == "execute":
        value = await executor.execute(
            params["language"], params["code"], limits=limits, stdin=stdin
        )
        return _result_wire(value)
    if method == "execute_file":
        path = Path(WORK, "input", params["file_name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_unb64(params["content"]) or b"")
        value = await executor.execute_file(path, limits=limits, stdin=stdin)
        return _result_wire(value)
    if method == "stream":
        stream = getattr(executor, "stream", None)
        if not callable(stream):
            value = await executor.execute(
                params["language"], params["code"], limits=limits, stdin=stdin
            )
            return _result_wire(value)
        events = stream(
            params["language"], params["code"], file_name=params.get("file_name"),
            limits=limits, stdin=stdin,
        )  # fmt: skip
        async for event in events:
            if isinstance(event, Finished):
                return _result_wire(event.result)
            data = getattr(event, "data", None)
            if isinstance(data, bytes | bytearray):
                _send({
                    "type": "event", "step": str(getattr(event, "step", "run")),
                    "stream": str(getattr(event, "stream", "stdout")), "data": _b64(bytes(data)),
                })  # fmt: skip
        raise PluginError("bad-result", "its stream ended without a result")
    raise PluginError("protocol", f"unknown method {method!r}")


async def _main() -> None:
    host = _Host()
    start = await host.start
    if start.get("protocol") != PROTOCOL:
        _send({"type": "error", "kind": "protocol", "message": "protocol version mismatch"})
        return
    try:
        executor = _construct(host, start)
        value = await _call(host, executor, start)
    except PluginError as exc:
        _send({"type": "error", "kind": exc.kind, "message": str(exc)})
        return
    except BaseException as exc:
        traceback.print_exc()
        _send({"type": "error", "kind": "raised", "message": _short(exc)})
        return
    _send({"type": "done", "value": value})


if __name__ == "__main__":
    asyncio.run(_main())
