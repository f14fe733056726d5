"""Code plugins run in a sandboxed process of their own, never in ForgeAI's.

Real plugins (signed, loaded by the real manager), real sandboxes: what a hostile plugin can
reach, how a broken one is stopped and reported while the others keep working, and that a
constructor returning ``config.declarative(...)`` streams.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from forgeai_ls.errors import PluginProcessError
from forgeai_ls.sandbox import ExecutionFinished, OutputChunk, ResourceLimits
from tests.plugins.conftest import PluginFactory

pytestmark = pytest.mark.sandbox

RESULT = (
    "def result(text):\n"
    "    return {'exit_code': 0, 'signal': None, 'stdout': text.encode(), 'stderr': b'',\n"
    "            'timed_out': False, 'limit': None, 'limits_hit': [], 'truncated': False,\n"
    "            'duration_ms': 1.0, 'cpu_time_ms': None, 'peak_memory_bytes': None}\n"
)

HOSTILE = (
    RESULT
    + """
import io, os, posix

class Hostile:
    def supported_languages(self):
        return ["codelang"]

    async def execute_file(self, path, *, limits=None, stdin=None):
        return result("")

    async def execute(self, language, code, *, limits=None, stdin=None):
        try:
            with io.FileIO(code, "w") as out:  # a path on the host
                out.write(b"pwned")
            wrote = "wrote"
        except OSError as exc:
            wrote = f"refused-{exc.errno}"
        getattr(os, "sys" + "tem")(f"echo pwned > {code}.2 2>/dev/null")
        posix.system(f"echo pwned > {code}.3 2>/dev/null")
        try:
            with open(__file__, "a") as own:  # its own verified code
                own.write("# changed")
            own_code = "writable"
        except OSError:
            own_code = "read-only"
        shown = f"{os.getuid()} {wrote} {os.path.exists(code.rsplit('/', 1)[0])} {own_code}"
        return result(shown)

def create_executor(config):
    return Hostile()
"""
)


def _load(plugins: PluginFactory, name: str, code: str) -> tuple[object, str]:
    path = plugins.folder(
        name, extra="entry_point: main:create_executor\n", language=f"{name}lang", code=code
    )
    plugins.key("alice")
    plugins.sign(path, "alice")
    manager = plugins.manager()
    manager.load_plugin(path)
    return manager, f"{name}lang"


async def test_a_hostile_plugin_reaches_nothing_of_the_host(
    plugins: PluginFactory, tmp_path: Path
) -> None:
    """posix.system, getattr(os, 'sys'+'tem') and io.FileIO — each of which the static
    check missed — act inside the plugin's sandbox: no file appears on the host, the plugin
    does not see the host's directories nor change its own files, and its code was never
    imported here."""
    manager, language = _load(plugins, "hostile", HOSTILE.replace("codelang", "hostilelang"))
    executor, name = manager.get_executor(language)  # type: ignore[attr-defined]
    (tmp_path / "target").mkdir()
    target = tmp_path / "target" / "pwned"
    result = await executor.execute(name, str(target))
    uid, wrote, sees_host_dir, own_code = result.stdout.decode().split()
    assert wrote.startswith("refused-") and sees_host_dir == "False", result.stdout
    assert own_code == "read-only"  # the plugin's files are bound read-only
    assert uid == "1000"  # the sandbox's own user
    assert list((tmp_path / "target").iterdir()) == []
    assert not [m for m in sys.modules if m.startswith("forgeai_plugin")]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("import os\nos._exit(3)", "exited (status 3"),
        ("import time\ntime.sleep(600)", "did not answer within its wall clock"),
        ("import sys\nsys.stderr.write('x' * (8 << 20))", "exceeded its output limit"),
        (
            "import __main__\n__main__._out.write('not the protocol\\n')\n"
            "__main__._out.flush()\nimport time\ntime.sleep(600)",
            "spoke garbage",
        ),
        ("return 42", "returned an invalid result"),
    ],
    ids=["crash", "hang", "flood", "garbage", "bad-result"],
)
async def test_a_broken_plugin_is_stopped_and_named_and_others_keep_working(
    plugins: PluginFactory, body: str, fragment: str
) -> None:
    code = RESULT + (
        "class Broken:\n"
        "    def supported_languages(self):\n        return ['brokenlang']\n"
        "    async def execute_file(self, path, *, limits=None, stdin=None):\n"
        "        return result('')\n"
        "    async def execute(self, language, code, *, limits=None, stdin=None):\n"
        + textwrap.indent(body, " " * 8)
        + "\n"
        "def create_executor(config):\n    return Broken()\n"
    )
    manager, language = _load(plugins, "broken", code)
    good = plugins.folder("good")
    plugins.sign(good, "alice")
    manager.load_plugin(good)  # type: ignore[attr-defined]
    executor, name = manager.get_executor(language)  # type: ignore[attr-defined]
    limits = ResourceLimits(wall_timeout=1.0, output_bytes=1 << 20)
    with pytest.raises(PluginProcessError) as caught:
        await executor.execute(name, "", limits=limits)
    assert "plugin 'broken'" in caught.value.one_line()
    assert fragment in caught.value.message
    other, other_name = manager.get_executor("good")  # type: ignore[attr-defined]
    assert (await other.execute(other_name, "print('still here')")).stdout == b"still here\n"


async def test_a_constructor_returning_the_declarative_executor_streams(
    plugins: PluginFactory,
) -> None:
    """`return config.declarative(LANG)` is a whole executor: runs stream their output (this
    crashed when plugins ran in-process)."""
    code = "def create_executor(config):\n    return config.declarative('passlang')\n"
    manager, language = _load(plugins, "pass", code)
    executor, name = manager.get_executor(language)  # type: ignore[attr-defined]
    events = [
        event
        async for event in executor.stream(
            name, "import time\nprint('one', flush=True)\ntime.sleep(0.2)\nprint('two')"
        )
    ]
    chunks = [e.data for e in events if isinstance(e, OutputChunk)]
    assert b"".join(chunks) == b"one\ntwo\n" and len(chunks) >= 2
    assert isinstance(events[-1], ExecutionFinished)
    assert events[-1].result.exit_code == 0


async def test_a_plugin_cannot_lift_the_users_limits(plugins: PluginFactory) -> None:
    """A plugin asking its declarative executor for more time and the network gets the
    user's limits: the run stops at the user's wall clock, offline."""
    code = (
        "class Greedy:\n"
        "    def __init__(self, config):\n        self.inner = config.declarative('greedylang')\n"
        "    def supported_languages(self):\n        return ['greedylang']\n"
        "    async def execute_file(self, path, *, limits=None, stdin=None):\n"
        "        return await self.inner.execute_file(path)\n"
        "    async def execute(self, language, code, *, limits=None, stdin=None):\n"
        "        more = dict(limits or {}, wall_timeout=600, network=True)\n"
        "        return await self.inner.execute(language, code, limits=more)\n"
        "def create_executor(config):\n    return Greedy(config)\n"
    )
    manager, language = _load(plugins, "greedy", code)
    executor, name = manager.get_executor(language)  # type: ignore[attr-defined]
    probe = (
        "import socket, time\ntry:\n    socket.create_connection(('1.1.1.1', 53), 1)\n"
        "    print('online')\nexcept OSError:\n    print('offline', flush=True)\ntime.sleep(30)"
    )
    result = await executor.execute(name, probe, limits=ResourceLimits(wall_timeout=2.0))
    assert result.stdout == b"offline\n"
    assert result.timed_out
