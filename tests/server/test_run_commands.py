"""forgeai.runFile / runSelection / cancelRun through a real server and the real sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.server.conftest import ForgeAIClient, open_document

pytestmark = pytest.mark.sandbox


async def execute(lsp: ForgeAIClient, command: str, *arguments: Any) -> dict[str, Any]:
    result = await lsp.client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=list(arguments))
    )
    assert isinstance(result, dict), result
    return result


def diagnostics(lsp: ForgeAIClient, uri: str) -> list[types.Diagnostic]:
    return list(lsp.client.diagnostics.get(uri, []))


async def test_run_file_streams_output_then_finishes(lsp: ForgeAIClient) -> None:
    """Output arrives as forgeai/output in order, then forgeai/runFinished; the result agrees."""
    uri = "file:///tmp/forgeai-test/count.py"
    code = (
        "import sys, time\nfor i in range(5):\n    print(i, flush=True)\n"
        "    time.sleep(0.05)\nprint('bye', file=sys.stderr)\nsys.exit(3)\n"
    )
    open_document(lsp.client, uri, "python", code)
    result = await execute(lsp, "forgeai.runFile", uri)
    run_id = result["runId"]
    assert (result["exitCode"], result["stdout"], result["stderr"]) == (
        3,
        "0\n1\n2\n3\n4\n",
        "bye\n",
    )
    streamed = "".join(o["text"] for o in lsp.output[run_id] if o["stream"] == "stdout")
    assert streamed == "0\n1\n2\n3\n4\n"
    assert len([o for o in lsp.output[run_id] if o["stream"] == "stdout"]) >= 2
    assert lsp.finished[run_id]["exitCode"] == 3
    assert lsp.finished[run_id]["uri"] == uri


async def test_run_uses_unsaved_editor_text(lsp: ForgeAIClient) -> None:
    """The run sees the text the editor has now, not what is on disk."""
    uri = "file:///tmp/forgeai-test/never-saved.py"
    open_document(lsp.client, uri, "python", "print('old')\n")
    lsp.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="print('new')\n")],
        )
    )
    result = await execute(lsp, "forgeai.runFile", uri)
    assert result["stdout"] == "new\n"


async def test_selection_error_maps_to_the_document_line(lsp: ForgeAIClient) -> None:
    """Lines 10-12 run as a selection; the error on its 2nd line lands on document line 11."""
    uri = "file:///tmp/forgeai-test/long.py"
    lines = [f"# line {i}" for i in range(10)] + [
        "x = 1",
        "raise ValueError('boom')",
        "print(x)",
        "# end",
    ]
    open_document(lsp.client, uri, "python", "\n".join(lines) + "\n")
    selection = types.Range(types.Position(10, 0), types.Position(12, 8))
    result = await execute(lsp, "forgeai.runSelection", uri, selection)
    assert result["exitCode"] == 1
    found = diagnostics(lsp, uri)
    assert [d.range.start.line for d in found] == [11]
    assert found[0].source == "forgeai"
    assert "ValueError: boom" in found[0].message


async def test_c_compile_error_diagnostic_line_and_column(lsp: ForgeAIClient) -> None:
    """gcc's error lands on the right line and column of the C document."""
    uri = "file:///tmp/forgeai-test/broken.c"
    code = "#include <stdio.h>\nint main(void) {\n    return undefined_name;\n}\n"
    open_document(lsp.client, uri, "c", code)
    result = await execute(lsp, "forgeai.runFile", uri)
    assert result["compileFailed"] is True
    found = diagnostics(lsp, uri)
    assert found and found[0].range.start == types.Position(2, 11)
    assert "undefined_name" in found[0].message


async def test_markdown_block_runs_in_its_language(lsp: ForgeAIClient) -> None:
    """A fenced js block in Markdown runs with node; errors land in the block's lines."""
    uri = "file:///tmp/forgeai-test/readme.md"
    text = "# Demo\n\n```js\nconst a = 1;\nthrow new Error('nope');\n```\n"
    open_document(lsp.client, uri, "markdown", text)
    selection = types.Range(types.Position(3, 0), types.Position(4, 24))
    result = await execute(lsp, "forgeai.runSelection", uri, selection)
    assert result["exitCode"] == 1
    assert [d.range.start.line for d in diagnostics(lsp, uri)] == [4]


async def test_timeout_becomes_a_limit_diagnostic(lsp: ForgeAIClient) -> None:
    """A run stopped by the wall clock gets a diagnostic naming the limit and its value."""
    uri = "file:///tmp/forgeai-test/slow.py"
    open_document(lsp.client, uri, "python", "import time\ntime.sleep(60)\n")
    lsp.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"forgeai": {"limits": {"timeout": 0.5}}})
    )
    result = await execute(lsp, "forgeai.runFile", uri)
    assert result["timedOut"] is True and result["limit"] == "timeout"
    found = diagnostics(lsp, uri)
    assert any("wall-clock limit of 0.5 s" in d.message for d in found)


async def test_cancel_run_stops_an_endless_loop(lsp: ForgeAIClient) -> None:
    """forgeai.cancelRun stops `while True` well within a second; the request still resolves."""
    uri = "file:///tmp/forgeai-test/forever.py"
    open_document(
        lsp.client, uri, "python", "print('started', flush=True)\nwhile True:\n    pass\n"
    )
    running = asyncio.ensure_future(execute(lsp, "forgeai.runFile", uri))
    while not lsp.output:
        await asyncio.sleep(0.01)
    run_id = next(iter(lsp.output))
    loop = asyncio.get_running_loop()
    asked = loop.time()
    cancelled = await execute(lsp, "forgeai.cancelRun", run_id)
    result = await asyncio.wait_for(running, 5)
    assert cancelled == {"runId": run_id, "cancelled": True}
    assert result["cancelled"] is True
    assert loop.time() - asked < 1.0
    assert lsp.finished[run_id]["cancelled"] is True


@pytest.mark.parametrize(
    ("command", "arguments", "fragment"),
    [
        ("forgeai.noSuchCommand", [], "is not defined"),
        ("forgeai.runFile", [], "arguments"),
        ("forgeai.runFile", ["file:///tmp/forgeai-test/not-open.py"], "is not open"),
        (
            "forgeai.runSelection",
            [
                "file:///tmp/forgeai-test/data.txt",
                {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 2}},
            ],
            "no installed plugin",
        ),
    ],
)
async def test_bad_commands_are_clear_errors_and_the_server_keeps_serving(
    lsp: ForgeAIClient, command: str, arguments: list[Any], fragment: str
) -> None:
    """Unknown command, bad arguments, a closed document, an unsupported language."""
    open_document(lsp.client, "file:///tmp/forgeai-test/data.txt", "plaintext", "hi\n")
    with pytest.raises(JsonRpcException) as caught:
        await lsp.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command, arguments=arguments)
        )
    assert fragment in str(caught.value)
    languages = await execute(lsp, "forgeai.listLanguages")
    assert "python" in {language["name"] for language in languages["languages"]}


async def test_project_file_imports_its_sibling_module(lsp: ForgeAIClient, tmp_path: Any) -> None:
    """runFile of a file on disk keeps its name and can import the module next to it."""
    (tmp_path / "helper.py").write_text("GREETING = 'from the sibling'\n")
    main = tmp_path / "app.py"
    main.write_text("import helper\nprint(helper.GREETING)\nprint(__file__)\n")
    uri = main.as_uri()
    open_document(lsp.client, uri, "python", main.read_text())
    result = await execute(lsp, "forgeai.runFile", uri)
    assert result["stdout"] == "from the sibling\n/work/app.py\n", result["stderr"]


async def test_two_documents_run_at_once_with_their_own_ids(lsp: ForgeAIClient) -> None:
    """Runs of different documents proceed together, each with its own runId."""
    uris = [f"file:///tmp/forgeai-test/par{i}.py" for i in range(3)]
    for index, uri in enumerate(uris):
        open_document(lsp.client, uri, "python", f"import time\ntime.sleep(0.3)\nprint({index})\n")
    results = await asyncio.gather(*(execute(lsp, "forgeai.runFile", uri) for uri in uris))
    assert [r["stdout"] for r in results] == ["0\n", "1\n", "2\n"]
    assert len({r["runId"] for r in results}) == 3


async def test_a_new_run_of_a_document_replaces_the_running_one(lsp: ForgeAIClient) -> None:
    """Running a document again stops its previous run (replacePreviousRun, the default)."""
    uri = "file:///tmp/forgeai-test/again.py"
    open_document(
        lsp.client, uri, "python", "print('go', flush=True)\nimport time\ntime.sleep(30)\n"
    )
    first = asyncio.ensure_future(execute(lsp, "forgeai.runFile", uri))
    while not lsp.output:
        await asyncio.sleep(0.01)
    lsp.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(text="print('second')\n")
            ],
        )
    )
    second = await execute(lsp, "forgeai.runFile", uri)
    replaced = await asyncio.wait_for(first, 5)
    assert replaced["cancelled"] is True
    assert second["stdout"] == "second\n"


async def test_invalid_settings_show_a_message_and_keep_defaults(lsp: ForgeAIClient) -> None:
    """Nonsense settings: a visible message, the defaults, and runs still work."""
    lsp.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"forgeai": {"limits": {"timeout": -3}, "backend": "teleport"}}
        )
    )
    uri = "file:///tmp/forgeai-test/after-bad-settings.py"
    open_document(lsp.client, uri, "python", "print('fine')\n")
    result = await execute(lsp, "forgeai.runFile", uri)
    assert result["stdout"] == "fine\n"
    messages = [m.message for m in lsp.client.messages]
    assert any("invalid ForgeAI settings" in m and "timeout" in m for m in messages)


async def test_code_lenses_stay_prompt_while_a_run_floods_output(lsp: ForgeAIClient) -> None:
    """A run streaming ~1 MiB of output for seconds does not hold up other requests."""
    uri = "file:///tmp/forgeai-test/flood.py"
    code = (
        "import sys, time\nfor _ in range(60):\n    sys.stdout.write(('x' * 1023 + '\\n') * 16)"
        "\n    sys.stdout.flush()\n    time.sleep(0.05)\n"
    )
    open_document(lsp.client, uri, "python", code)
    lens_uri = "file:///tmp/forgeai-test/lens.py"
    open_document(lsp.client, lens_uri, "python", "print(1)\n")
    flooding = asyncio.ensure_future(execute(lsp, "forgeai.runFile", uri))
    while not lsp.output:
        await asyncio.sleep(0.01)
    lenses = await lsp.client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=lens_uri))
    )
    answered_while_running = not flooding.done()
    result = await flooding
    assert lenses and answered_while_running
    assert result["exitCode"] == 0 and len(result["stdout"]) == 60 * 16 * 1024


async def test_a_character_split_across_writes_arrives_whole(lsp: ForgeAIClient) -> None:
    """A UTF-8 character written in two halves is streamed as one character, not garbage."""
    uri = "file:///tmp/forgeai-test/euro.py"
    code = (
        "import sys, time\nout = sys.stdout.buffer\nout.write(b'price: \\xe2'); out.flush()\n"
        "time.sleep(0.2)\nout.write(b'\\x82\\xac\\n'); out.flush()\n"
    )
    open_document(lsp.client, uri, "python", code)
    result = await execute(lsp, "forgeai.runFile", uri)
    streamed = "".join(o["text"] for o in lsp.output[result["runId"]])
    assert streamed == "price: €\n" == result["stdout"]


async def test_diagnostic_message_is_the_error_not_the_programs_output(lsp: ForgeAIClient) -> None:
    """A traceback's diagnostic says the exception, even when the program printed before it."""
    uri = "file:///tmp/forgeai-test/printed-first.py"
    open_document(lsp.client, uri, "python", "print('some output')\nraise KeyError('k')\n")
    await execute(lsp, "forgeai.runFile", uri)
    found = diagnostics(lsp, uri)
    assert [d.message for d in found] == ["KeyError: 'k'"]


@pytest.mark.parametrize(
    ("name", "decoded"),
    [
        ("my%20script.py", "my script.py"),
        ("caf%C3%A9%20%E6%97%A5%E6%9C%AC.py", "café 日本.py"),
        ("100%25%20sure.py", "100% sure.py"),
    ],
    ids=["space", "non-ascii", "percent-sign"],
)
async def test_files_whose_names_need_percent_encoding_run(
    lsp: ForgeAIClient, name: str, decoded: str
) -> None:
    """Editors percent-encode spaces and non-ASCII characters in URIs; such a file runs as a
    whole and as a selection, its program sees the real name, and the diagnostics and the
    end notification carry the URI the editor sent."""
    uri = f"file:///tmp/forgeai-test/{name}"
    open_document(lsp.client, uri, "python", "import sys\nprint(sys.argv[0])\n1/0\nprint(2)\n")
    result = await execute(lsp, "forgeai.runFile", uri)
    assert result["stdout"] == f"/work/{decoded}\n", result
    assert lsp.finished[result["runId"]]["uri"] == uri
    assert any("ZeroDivisionError" in d.message for d in diagnostics(lsp, uri))
    selection = {"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 8}}
    picked = await execute(lsp, "forgeai.runSelection", uri, selection)
    assert (picked["exitCode"], picked["stdout"]) == (0, "2\n"), picked


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("javascript", "console.error('    at /work/col.js:1:99999999999999999999');\n"),
        (
            "python",
            "import sys\nprint('Traceback (most recent call last):\\n  File \"/work/t.py\", line '"
            " + '9' * 5000 + ', in <module>\\nValueError: x', file=sys.stderr)\nsys.exit(1)\n",
        ),
        ("python", "import sys\nprint('  File \"/work/t.py\", line 0', file=sys.stderr)\n"),
    ],
    ids=["huge-column", "5000-digit-line", "line-zero"],
)
async def test_impossible_locations_in_output_never_break_the_run(
    lsp: ForgeAIClient, language: str, code: str
) -> None:
    """A program's output can look like a stack line with any numbers in it: the run still
    answers and finishes; such a location is no diagnostic."""
    name = {"javascript": "col.js", "python": "t.py"}[language]  # as the output names it
    uri = f"file:///tmp/forgeai-test/{name}"
    open_document(lsp.client, uri, language, code)
    result = await execute(lsp, "forgeai.runFile", uri)
    assert result["runId"] in lsp.finished
    for diagnostic in diagnostics(lsp, uri):
        assert diagnostic.range.start.line < 10
