"""The VS Code extension in a real VS Code: code-server + the built .vsix, driven by Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VSCODE = Path(__file__).resolve().parents[2] / "editors" / "vscode"
E2E = VSCODE / "e2e"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

missing = [
    what
    for what, present in (
        (
            "code-server (npm ci in editors/vscode/e2e)",
            (E2E / "node_modules" / ".bin" / "code-server").exists(),
        ),
        (
            "the built extension (npm run package in editors/vscode)",
            (VSCODE / "forgeai.vsix").exists(),
        ),
        ("Debian's chromium", shutil.which("chromium") is not None),
    )
    if not present
]


CHECKS = [
    "lens shown",
    "output streamed with summary",
    "diagnostic shown",
    "selection ran from the palette",
]


@pytest.mark.skipif(bool(missing), reason=f"not set up here: {', '.join(missing)}")
@pytest.mark.parametrize("scenario", ["trusted", "untrusted"])
def test_vscode_lens_click_output_diagnostic_and_palette_selection(scenario: str) -> None:
    """Lens shown and clicked, output streamed with a summary, a diagnostic, and a selection
    run through the command palette; screenshots are saved in tests/artifacts.

    ``untrusted``: the same in Restricted Mode, in a repository whose .vscode/settings.json
    names its own server, Python and plugin folder and allows unsigned plugins, and which
    ships .venv/bin/forgeai-ls: the runs go through the user's server, and none of the
    repository's programs ever runs."""
    done = subprocess.run(
        ["node", str(E2E / "e2e.mjs")],
        env={
            **os.environ,
            "FORGEAI_PYTHON": sys.executable,
            "FORGEAI_VSIX": str(VSCODE / "forgeai.vsix"),
            "ARTIFACTS": str(ARTIFACTS),
            "FORGEAI_E2E_SCENARIO": scenario,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    if scenario == "untrusted":
        expected = [*CHECKS, "in Restricted Mode, no program of the untrusted workspace ran"]
    else:  # the workspace has a virtualenv of its own: the output names it
        expected = [*CHECKS[:2], "the run's header names the workspace's venv", *CHECKS[2:]]
    assert report["checks"] == expected
    suffix = "-untrusted" if scenario == "untrusted" else ""
    assert (ARTIFACTS / f"vscode-run-selection{suffix}.png").stat().st_size > 10_000
