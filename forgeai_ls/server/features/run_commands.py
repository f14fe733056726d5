"""workspace/executeCommand: forgeai.runFile, forgeai.runSelection, forgeai.cancelRun."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from forgeai_ls.server.lenses import markdown_blocks
from forgeai_ls.server.project_files import sibling_sources
from forgeai_ls.server.server import ForgeAIServer, file_name_of


def _text_in(lines: list[str], selection: types.Range) -> str:
    start, end = selection.start, selection.end
    if (start.line, start.character) > (end.line, end.character) or start.line >= len(lines):
        raise JsonRpcInvalidParams(
            message=f"range {start.line}:{start.character}-{end.line}:{end.character} is "
            f"empty or outside the document ({len(lines)} lines)"
        )
    end_line = min(end.line, len(lines) - 1)
    if start.line == end_line:
        return lines[start.line][start.character : end.character]
    parts = [
        lines[start.line][start.character :],
        *lines[start.line + 1 : end_line],
        lines[end_line][: end.character],
    ]
    return "\n".join(parts) + "\n"


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
                line_count=len(document.lines),
                extra_files=sibling_sources(uri),
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
        lines = document.source.split("\n")
        code = _text_in(lines, selection)
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
                line_offset=selection.start.line,
                column_offset=selection.start.character,
                line_count=len(lines),
            )
        )

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
