"""workspace/executeCommand: forgeai.runFile, forgeai.runSelection, forgeai.cancelRun."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import TextDocument

from forgeai_ls.server.lenses import markdown_blocks
from forgeai_ls.server.placement import Placement
from forgeai_ls.server.server import ForgeAIServer, file_name_of


def _client_position(document: TextDocument, position: types.Position) -> types.Position:
    """``position`` clamped to the document (a line past the end: the end of the last line;
    a character past a line's end: its end), in the client's units."""
    lines = document.lines
    if position.line >= len(lines):
        last = len(lines) - 1
        return types.Position(last, document.position_codec.client_num_units(lines[last]))
    length = document.position_codec.client_num_units(lines[position.line].rstrip("\r\n"))
    return types.Position(position.line, min(position.character, length))


def _selection(document: TextDocument, selection: types.Range) -> tuple[str, Placement]:
    """The selected text (in the negotiated position encoding, so an emoji before the
    selection counts as the client counts it), ending with a newline, and where it sits."""
    start, end = selection.start, selection.end
    lines = document.lines
    if (start.line, start.character) >= (end.line, end.character) or start.line >= len(lines):
        raise JsonRpcInvalidParams(
            message=f"range {start.line}:{start.character}-{end.line}:{end.character} is "
            f"empty or outside the document ({len(lines)} lines)"
        )
    clamped = types.Range(_client_position(document, start), _client_position(document, end))
    text = document.text_in_client_range(clamped)
    if text and not text.endswith("\n"):
        text += "\n"
    first = document.position_from_client_units(clamped.start)
    placement = Placement(
        lines, document.position_codec, line_offset=first.line, column_offset=first.character
    )
    return text, placement


def _siblings(uri: str) -> dict[str, bytes]:
    """The files a run of this document sees beside it (the CLI's rule: ``sibling_sources``)."""
    from forgeai_ls.plugins.source import sibling_sources

    path = uris.to_fs_path(uri)
    return sibling_sources(Path(path)) if path else {}


def _target(**fields: Any) -> Any:
    from forgeai_ls.server.runs import RunTarget  # the run machinery loads with the plugins

    return RunTarget(**fields)


def register(server: ForgeAIServer) -> None:
    @server.command("forgeai.runFile")
    async def run_file(ls: ForgeAIServer, uri: str) -> dict[str, Any]:
        """Run the editor's current text of a document (unsaved edits included)."""
        document = ls.document(uri)
        found = ls.language_of(document, verified=True)
        if found is None:
            raise JsonRpcInvalidParams(
                message=f"no installed plugin runs {uri} (language '{document.language_id}')"
            )
        executor, language = ls.executor(found.name)
        return await ls.runs.execute(
            _target(
                uri=uri,
                executor=executor,
                language=language,
                code=document.source,
                file_name=file_name_of(uri),
                limits=ls.run_limits(executor, language),
                placement=Placement(document.lines, document.position_codec),
                extra_files=_siblings(uri),
                environment=ls.environment_for(uri, executor, language),
                egress=ls.egress(),
                declared=ls.declared_for(uri, executor, language, document.source),
            )
        )

    @server.command("forgeai.runSelection")
    async def run_selection(
        ls: ForgeAIServer,
        uri: str,
        selection: types.Range,
    ) -> dict[str, Any]:
        """Run a range of a document; in Markdown, the fenced block's language is used."""
        document = ls.document(uri)
        code, placement = _selection(document, selection)
        language_name: str | None = None
        if document.language_id == "markdown" or uri.endswith((".md", ".markdown")):
            for block in markdown_blocks(document.source):
                if block.code.start <= selection.start.line < block.code.end:
                    language_name = block.language
            if language_name is None:
                raise JsonRpcInvalidParams(
                    message="the range is not inside a fenced code block with a language"
                )
        else:
            found = ls.language_of(document, verified=True)
            if found is None:
                raise JsonRpcInvalidParams(
                    message=f"no installed plugin runs {uri} (language '{document.language_id}')"
                )
            language_name = found.name
        executor, language = ls.executor(language_name)
        return await ls.runs.execute(
            _target(
                uri=uri,
                executor=executor,
                language=language,
                code=code,
                file_name=None,
                limits=ls.run_limits(executor, language),
                placement=placement,
                environment=ls.environment_for(uri, executor, language),
                egress=ls.egress(),
                declared=ls.declared_for(uri, executor, language, code),
            )
        )

    @server.command("forgeai.getArtifact")
    async def get_artifact(ls: ForgeAIServer, run_id: str, name: str) -> dict[str, Any]:
        """A file out of a recent run, with its bytes (base64): for clients that cannot read
        the saved path."""
        import base64

        found = ls.runs.artifacts.get(run_id, {}).get(name)
        if found is None:
            raise JsonRpcInvalidParams(
                message=f"run {run_id} has no artifact {name!r} (only the last 50 runs' are kept)"
            )
        try:
            data = await asyncio.to_thread(Path(found.path).read_bytes)
        except OSError as exc:
            raise JsonRpcInvalidParams(
                message=f"the artifact {name!r} of run {run_id} is no longer kept ({exc.strerror})"
            ) from None
        return {**found.model_dump(mode="json"), "data": base64.b64encode(data).decode()}

    @server.command("forgeai.cancelRun")
    def cancel_run(ls: ForgeAIServer, run_id: str) -> dict[str, Any]:
        """Stop a run (and everything it started) by its id."""
        return {"runId": run_id, "cancelled": ls.runs.cancel(run_id)}

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancelled(
        ls: ForgeAIServer,
        params: types.WorkDoneProgressCancelParams,
    ) -> None:
        """The user cancelled a run's progress notification."""
        ls.runs.cancel_by_progress(str(params.token))
