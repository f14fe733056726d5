"""The `forgeai` command as a user starts it: whole processes, from exec to exit.

ForgeAI is built into a wheel and installed into a fresh virtual environment (as `pip` or
`pipx` would install it: no editable install, byte code compiled), then, interleaved in one
loop so that machine load hits all alike:

- `python3 -c 'print(1)'` with the real interpreter binary `python3` resolves to (the
  baseline of issue 11), and with the virtual environment's interpreter (the same binary
  without the site packages of its installation: a stricter baseline where the base install
  has slow `.pth` files);
- `forgeai --version`;
- `forgeai run -l python -c 'print(1)'` through the user's daemon (started before the loop,
  as after any first run), and in-process (`FORGEAI_DAEMON=0`) for reference.

`python -m benchmarks.cli` prints the figure alone.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forgeai_ls.sandbox.toolchain import ToolchainResolver

REPO = Path(__file__).resolve().parents[1]
UV = str(Path(sys.executable).with_name("uv"))


def _installed(root: Path) -> Path:
    """A fresh virtual environment with ForgeAI's wheel installed; its bin directory."""
    dist = root / "dist"
    subprocess.run([UV, "build", "--wheel", "--out-dir", str(dist), str(REPO)], check=True,
                   capture_output=True)  # fmt: skip
    (wheel,) = dist.glob("*.whl")
    venv = root / "venv"
    subprocess.run([UV, "venv", "--python", sys.executable, str(venv)], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(
        [UV, "pip", "install", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
         str(wheel)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return venv / "bin"


def _ms(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    assert done.returncode == 0, (argv, done.stderr)
    return elapsed


def cli_startup(runs: int = 30) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="forgeai-bench-cli-") as scratch:
        root = Path(scratch)
        bin_dir = _installed(root)
        forgeai = str(bin_dir / "forgeai")
        python = ToolchainResolver().resolve("python3").executable
        home = root / "home"
        env = {**os.environ, "FORGEAI_HOME": str(home), "FORGEAI_DAEMON": "1"}
        env.pop("PYTHONPATH", None)
        in_process = {**env, "FORGEAI_DAEMON": "0"}
        commands = {
            "bare": ([python, "-c", "print(1)"], env),
            "venv_python": ([str(bin_dir / "python"), "-c", "print(1)"], env),
            "version": ([forgeai, "--version"], env),
            "run_daemon": ([forgeai, "run", "-l", "python", "-c", "print(1)"], env),
            "run_in_process": ([forgeai, "run", "-l", "python", "-c", "print(1)"], in_process),
        }
        subprocess.run([forgeai, "daemon", "start"], env=env, cwd=root, check=True,
                       capture_output=True)  # fmt: skip
        try:
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for index in range(runs + 3):
                for name, (argv, command_env) in commands.items():
                    elapsed = _ms(argv, command_env, root)
                    if index >= 3:  # warm-up: page cache, byte code, the daemon's first slot
                        samples[name].append(elapsed)
            served = json.loads(
                subprocess.run([forgeai, "daemon", "status", "--json"], env=env, cwd=root,
                               check=True, capture_output=True).stdout
            )["daemons"]  # fmt: skip
        finally:
            subprocess.run([forgeai, "daemon", "stop"], env=env, cwd=root, check=False,
                           capture_output=True)  # fmt: skip
    medians = {f"{name}_ms": statistics.median(values) for name, values in samples.items()}
    bare, venv = medians["bare_ms"], medians["venv_python_ms"]
    return {
        **medians,
        "daemon_runs": float(sum(d["runs"] for d in served if d["current"])),
        "run_ratio": medians["run_daemon_ms"] / bare,
        "version_ratio": medians["version_ms"] / bare,
        "run_ratio_venv_python": medians["run_daemon_ms"] / venv,
        "version_ratio_venv_python": medians["version_ms"] / venv,
        "run_in_process_ratio": medians["run_in_process_ms"] / bare,
    }


if __name__ == "__main__":
    print(json.dumps(cli_startup(), indent=2))
