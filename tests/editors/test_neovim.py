"""The Neovim plugin in a real headless Neovim: lens, run, output buffer, diagnostics, selection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "editors" / "nvim"


def nvim_env(tmp_path: Path, program: Path, **extra: str) -> dict[str, str]:
    """The server command, the file to open, and private XDG dirs (no user state touched)."""
    return {
        **os.environ,
        "FORGEAI_LS_CMD": json.dumps([sys.executable, "-m", "forgeai_ls"]),
        "FORGEAI_E2E_FILE": str(program),
        **{
            f"XDG_{kind}_HOME": str(tmp_path / kind.lower())
            for kind in ("STATE", "CACHE", "DATA", "CONFIG")
        },
        **extra,
    }


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("nvim") is None, reason="Neovim is not installed here")
def test_neovim_end_to_end(tmp_path: Path) -> None:
    """e2e.lua drives the plugin; every check it reports passes and nvim exits 0."""
    venv = tmp_path / ".venv"  # the project's environment: its package imports
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (next(venv.glob("lib/python3*/site-packages")) / "nvimdep.py").write_text("WHO = 'nvim'\n")
    program = tmp_path / "prog.py"
    program.write_text(
        'import nvimdep, os\nprint(f"hello from {nvimdep.WHO}"); '
        "open(os.environ['FORGEAI_OUTPUT_DIR'] + '/result.txt', 'w').write('done')\n"
        'raise ValueError("boom")\n'
    )
    report = tmp_path / "report.json"
    env = nvim_env(tmp_path, program, FORGEAI_E2E_REPORT=str(report))
    done = subprocess.run(
        [
            "nvim",
            "--headless",
            "-u",
            str(PLUGIN / "tests" / "minimal_init.lua"),
            "-c",
            f"luafile {PLUGIN / 'tests' / 'e2e.lua'}",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert report.exists(), done.stdout + done.stderr
    result = json.loads(report.read_text())
    failed = [c for c in result["checks"] if not c["ok"]]
    assert failed == [], failed
    assert done.returncode == 0
    assert result["diagnostics"][0]["line"] == 2
    assert "ValueError: boom" in "\n".join(result["output"])
    files_out = [line for line in result["output"] if line.startswith("file out: result.txt")]
    assert files_out, result["output"]
    saved = Path(files_out[0].rsplit(" → ", 1)[1])
    assert saved.read_text() == "done"
    headers = [line for line in result["output"] if line.startswith("environment: ")]
    assert headers and all(
        line.startswith(f"environment: {venv} (Python ") and line.endswith("; nearest .venv)")
        for line in headers
    ), result["output"]


@pytest.mark.skipif(
    shutil.which("nvim") is None
    or shutil.which("tmux") is None
    or shutil.which("chromium") is None,
    reason="the Neovim screenshot needs nvim, tmux and chromium",
)
def test_neovim_screenshot(tmp_path: Path) -> None:
    """Neovim in a real terminal (tmux), after a lens run and a selection run, as a PNG."""
    import time

    from tests.editors.terminal_screenshot import capture_tmux, render_png

    program = tmp_path / "prog.py"
    program.write_text('print("hello from nvim")\nx = 1\nraise ValueError("boom")\n')
    ready = tmp_path / "ready"
    session = f"forgeai-nvim-{os.getpid()}"
    env = nvim_env(tmp_path, program, FORGEAI_SCREEN_READY=str(ready), TERM="xterm-256color")
    command = (
        f"nvim -u {PLUGIN / 'tests' / 'minimal_init.lua'} "
        f"-c 'luafile {PLUGIN / 'tests' / 'screen.lua'}'"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "40", command],
        env=env,
        check=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists(), "Neovim did not reach the screenshot state in tmux"
        time.sleep(0.3)
        screen = capture_tmux(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    assert "hello from nvim" in screen and "exit 0 in" in screen and "exit 1 in" in screen
    artifacts = Path(__file__).resolve().parents[1] / "artifacts"
    artifacts.mkdir(exist_ok=True)
    render_png(screen, artifacts / "neovim.png")
    assert (artifacts / "neovim.png").stat().st_size > 10_000
