"""Programs that wait, inside a sandbox started ahead of time, for the one program they run.

A warm slot is a complete sandbox (namespaces, limits, cgroup, seccomp) whose process has
already started and is blocked reading its stdin. When a run takes the slot, ForgeAI writes
the program's files (``launcher.files_preamble``) and then the program's stdin to that pipe.

- ``python``: the interpreter is already up; the stub writes the files, makes a fresh
  ``__main__`` module, sets ``sys.argv`` and ``sys.path[0]`` as ``python3 FILE`` would, and
  executes the file. Tracebacks start at the program's own frame; exit statuses are Python's.
- ``node``: the same for Node.js; the file runs as the main module (``require.main``).
- ``shell``: ``/bin/sh`` reads the files and then runs the command line (any interpreter):
  the sandbox is ready, the interpreter starts when the program arrives.

The python and node stubs announce that they are ready by writing one byte to a control pipe
whose descriptor number is their first argument. The python stub also reports the program's
end there (``e<status> <CPU seconds>``), once the program has finished, its threads were
joined, its ``atexit`` functions ran and its output was flushed, exactly as the interpreter
would on its way out: the run ends then, without waiting for the interpreter's teardown (which
costs more than running ``print(1)``). The interpreter is then killed, not waited for, so its
CPU time (with the children it waited for) comes with the report: on cgroup v1 nothing else
counts it (v2 reads the run's ``cpu.stat``). A program could write to that pipe itself,
which only mislabels its own result. Each slot serves exactly one program: nothing carries
from one run to the next.
"""

from __future__ import annotations

from forgeai_ls.sandbox.launcher import shell_launcher_argv

PYTHON_STUB = r"""
import os, sys
def _forgeai_warm_slot():
    def line():
        data = bytearray()
        while True:
            byte = os.read(0, 1)
            if not byte:
                os._exit(125)
            if byte == b"\n":
                return bytes(data)
            data += byte
    def exact(size):
        data = bytearray()
        while len(data) < size:
            chunk = os.read(0, size - len(data))
            if not chunk:
                os._exit(125)
            data += chunk
        return bytes(data)
    def report(exc, trace):
        sys.excepthook(type(exc), exc, exc.with_traceback(trace).__traceback__)
        return 1
    def exit_status(exc):
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code & 0xFF
        print(exc.code, file=sys.stderr)
        return 1
    control = int(sys.argv[1])
    os.set_inheritable(control, False)
    os.write(control, b"r")
    for _ in range(int(line())):
        size, name = line().split(b" ", 1)
        path = os.path.join("/work", os.fsdecode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(exact(int(size)))
    del sys.argv[:2]
    script = sys.argv[0]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    main = type(sys)("__main__")
    main.__file__ = script
    main.__cached__ = None
    main.__annotations__ = {}
    main.__builtins__ = __builtins__
    loaders = sys.modules.get("_frozen_importlib_external")
    if loaders is not None:
        main.__loader__ = loaders.SourceFileLoader("__main__", script)
    sys.modules["__main__"] = main
    status = 0
    try:
        with open(script, "rb") as source:
            code = compile(source.read(), script, "exec")
    except SyntaxError as exc:
        status = report(exc, None)  # as python3 reports it: no traceback, only the place
    else:
        try:
            exec(code, main.__dict__)
        except SystemExit as exc:
            status = exit_status(exc)
        except BaseException as exc:
            status = report(exc, exc.__traceback__.tb_next)  # from the program's frame on
    # What the interpreter does on its way out, then the end is reported; the teardown of
    # the interpreter itself is not waited for.
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            status = status or 120
    times = os.times()  # this interpreter and every child it waited for
    used = times.user + times.system + times.children_user + times.children_system
    os.write(control, b"e%d %.6f\n" % (status, used))
    os._exit(status)
_forgeai_warm_slot()
"""

NODE_STUB = r"""
const fs = require("fs"), path = require("path");
const ready = Number(process.argv[1]);
process.argv.splice(1, 1);
fs.writeSync(ready, "r");
fs.closeSync(ready);
const one = Buffer.alloc(1);
function line() {
  const bytes = [];
  for (;;) {
    if (fs.readSync(0, one, 0, 1, null) === 0) process.exit(125);
    if (one[0] === 10) return Buffer.from(bytes).toString();
    bytes.push(one[0]);
  }
}
function exact(size) {
  const data = Buffer.alloc(size);
  let offset = 0;
  while (offset < size) {
    const read = fs.readSync(0, data, offset, size - offset, null);
    if (read === 0) process.exit(125);
    offset += read;
  }
  return data;
}
for (let count = Number(line()); count > 0; count--) {
  const header = line(), space = header.indexOf(" ");
  const file = path.join("/work", header.slice(space + 1));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, exact(Number(header.slice(0, space))));
}
require("module").runMain();
"""

KINDS = ("python", "node", "shell")
SIGNALS_READY = frozenset({"python", "node"})
REPORTS_END = frozenset({"python"})


def slot_argv(kind: str, run_argv: list[str], script_index: int, ready_fd: int) -> list[str]:
    """The argv of a slot that will run ``run_argv`` (whose ``script_index``-th element is the
    program's file) once its files arrive."""
    if kind == "python":
        stub = ["-c", PYTHON_STUB, str(ready_fd)]
    elif kind == "node":
        stub = ["-e", NODE_STUB, str(ready_fd)]
    elif kind == "shell":
        return shell_launcher_argv(run_argv)
    else:
        raise ValueError(f"unknown warm start kind {kind!r}")
    return [*run_argv[:script_index], *stub, *run_argv[script_index:]]
