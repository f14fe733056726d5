"""Files out: what a program leaves in /work/out comes back (read once the sandbox has ended,
from its namespaces), regular files only, capped; warm runs exactly like cold ones."""

from __future__ import annotations

import hashlib

import pytest

from forgeai_ls.sandbox.artifacts import MAX_FILES
from tests.conftest import run_code

pytestmark = pytest.mark.sandbox


async def test_files_folders_and_what_is_never_followed() -> None:
    code = (
        "import os\n"
        "out = os.environ['FORGEAI_OUTPUT_DIR']\n"
        "print(out, os.listdir(out))\n"
        "os.makedirs(out + '/plots/2026')\n"
        "open(out + '/plots/2026/data.csv', 'w').write('x,y\\n1,2\\n')\n"
        "open(out + '/blob.bin', 'wb').write(bytes(range(256)) * 4096)\n"
        "os.symlink('/etc/shadow', out + '/shadow')\n"
        "os.mkfifo(out + '/pipe')\n"
    )
    result = await run_code("python", code)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == b"/work/out []\n"
    assert result.artifacts is not None
    found = {a.name: a for a in result.artifacts.files}
    assert sorted(found) == ["blob.bin", "plots/2026/data.csv"]
    assert found["plots/2026/data.csv"].data == b"x,y\n1,2\n"
    assert found["plots/2026/data.csv"].mime == "text/csv"
    blob = found["blob.bin"]
    assert blob.size == 256 * 4096
    assert hashlib.sha256(blob.data).digest() == hashlib.sha256(bytes(range(256)) * 4096).digest()
    assert sorted(result.artifacts.skipped) == [
        "pipe: not a regular file (FIFO, device or socket)",
        "shadow: a symbolic link, not followed",
    ]


async def test_nothing_written_nothing_reported() -> None:
    result = await run_code("python", "print(1)")
    assert result.artifacts is not None and result.artifacts.empty


async def test_past_the_cap_files_are_listed_not_copied() -> None:
    code = (
        "import os\nout = os.environ['FORGEAI_OUTPUT_DIR']\n"
        f"for i in range({MAX_FILES + 3}):\n"
        "    open(f'{out}/f{i:04d}.txt', 'w').write(str(i))\n"
    )
    result = await run_code("python", code, wall_timeout=60)
    assert result.exit_code == 0, result.stderr
    assert result.artifacts is not None
    assert len(result.artifacts.files) == MAX_FILES
    assert len(result.artifacts.skipped) == 3
    assert all("over the cap" in reason for reason in result.artifacts.skipped)


async def test_a_program_stopped_by_the_wall_clock_still_gives_back_its_files() -> None:
    code = (
        "import os, time\n"
        "open(os.environ['FORGEAI_OUTPUT_DIR'] + '/partial.log', 'w').write('step 1\\n')\n"
        "time.sleep(60)\n"
    )
    result = await run_code("python", code, wall_timeout=1)
    assert result.timed_out
    assert result.artifacts is not None
    assert [(a.name, a.data) for a in result.artifacts.files] == [("partial.log", b"step 1\n")]


async def test_a_compiled_program_writes_files_out_too() -> None:
    code = (
        "#include <stdio.h>\n#include <stdlib.h>\n"
        "int main(void) {\n"
        "  char path[256];\n"
        '  snprintf(path, sizeof path, "%s/report.txt", getenv("FORGEAI_OUTPUT_DIR"));\n'
        '  FILE *f = fopen(path, "w"); fputs("from C\\n", f); fclose(f); return 0;\n'
        "}\n"
    )
    result = await run_code("c", code)
    assert result.exit_code == 0, result.stderr
    assert result.artifacts is not None
    assert [(a.name, a.data) for a in result.artifacts.files] == [("report.txt", b"from C\n")]


async def test_a_program_that_ends_at_once_still_gives_back_its_files() -> None:
    """However short the program, its output directory outlives it (the sandbox waits until
    its namespaces are held before the program starts)."""
    for attempt in range(15):
        result = await run_code("bash", f'echo {attempt} > "$FORGEAI_OUTPUT_DIR/n.txt"')
        assert result.exit_code == 0, result.stderr
        assert result.artifacts is not None
        assert [(a.name, a.data) for a in result.artifacts.files] == [
            ("n.txt", f"{attempt}\n".encode())
        ]


async def test_cold_and_warm_runs_started_together_both_give_back_their_files() -> None:
    """A warm slot that starts while a cold run goes (bwrap moves PID 1 into a nested user
    namespace at its own pace): each sandbox's output directory is found again."""
    import tempfile
    from pathlib import Path

    from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
    from forgeai_ls.sandbox import NativeBackend, final_result
    from forgeai_ls.sandbox.warm_pool import PoolSettings

    backend = NativeBackend(pools=PoolSettings(size=1))
    with tempfile.TemporaryDirectory() as home:
        manager = PluginManager(backend, ManagerConfig(home=Path(home)))
        manager.load_all()
        executor, name = manager.get_executor("python")
        language = executor.language(name)
        code = "import os\nopen(os.environ['FORGEAI_OUTPUT_DIR'] + '/n.txt', 'w').write('1')\n"
        try:
            for _ in range(3):
                cold = await final_result(language.stream(code))  # its slot starts meanwhile
                assert await backend.wait_warm(language.build_request(code)) == 1
                warm = await final_result(language.stream(code))
                for result in (cold, warm):
                    assert result.artifacts is not None
                    assert [a.name for a in result.artifacts.files] == ["n.txt"], result
                backend.close()
        finally:
            backend.close()
