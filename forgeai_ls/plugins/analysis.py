"""Static checks of a plugin's Python code and of its seccomp profile, before anything runs.

A code plugin's job is to shape requests for ForgeAI's sandbox, never to run things itself;
code that starts processes, opens sockets, loads native code or evaluates strings would bypass
the sandbox. Such findings refuse a plugin whose manifest says ``security_level: high`` and are
reported for the others.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass

from forgeai_ls.errors import SecurityProfileError

FORBIDDEN_MODULES = frozenset(
    {
        "subprocess",
        "socket",
        "ctypes",
        "cffi",
        "multiprocessing",
        "pty",
        "pexpect",
        "asyncio.subprocess",
        "importlib",
        "imp",
        "marshal",
        "pickle",
        "shutil",
        "http",
        "urllib",
        "requests",
        "httpx",
        "ftplib",
        "telnetlib",
        "smtplib",
        "signal",
        "resource",
        "mmap",
    }
)
FORBIDDEN_OS_CALLS = frozenset(
    {
        "system",
        "popen",
        "fork",
        "forkpty",
        "kill",
        "killpg",
        "posix_spawn",
        "posix_spawnp",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "setuid",
        "setgid",
        "chroot",
        "unshare",
        "setns",
        "remove",
        "unlink",
        "rmdir",
        "removedirs",
    }
)
FORBIDDEN_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "breakpoint", "open"})
FORBIDDEN_ASYNCIO = frozenset(
    {
        "create_subprocess_exec",
        "create_subprocess_shell",
        "open_connection",
        "start_server",
        "open_unix_connection",
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def _module_root(name: str) -> str:
    return name.split(".")[0]


class _Visitor(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.findings: list[Finding] = []

    def _flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.file, getattr(node, "lineno", 0), what))

    def _module(self, node: ast.AST, name: str) -> None:
        if name in FORBIDDEN_MODULES or _module_root(name) in FORBIDDEN_MODULES:
            self._flag(node, f"imports {name}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._module(node, module)
        for alias in node.names:
            if module == "os" and alias.name in FORBIDDEN_OS_CALLS:
                self._flag(node, f"imports os.{alias.name}")
            if module == "asyncio" and alias.name in FORBIDDEN_ASYNCIO:
                self._flag(node, f"imports asyncio.{alias.name}")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
            self._flag(node, f"calls {func.id}()")
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, attribute = func.value.id, func.attr
            if owner == "os" and attribute in FORBIDDEN_OS_CALLS:
                self._flag(node, f"calls os.{attribute}()")
            elif owner == "asyncio" and attribute in FORBIDDEN_ASYNCIO:
                self._flag(node, f"calls asyncio.{attribute}()")
            elif owner == "builtins" and attribute in FORBIDDEN_BUILTINS:
                self._flag(node, f"calls builtins.{attribute}()")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in {"__subclasses__", "__globals__", "__builtins__", "__code__"}:
            self._flag(node, f"uses {node.attr} (escapes through the object model)")
        self.generic_visit(node)


def analyse_python(file: str, source: bytes) -> list[Finding]:
    """Findings in one module; a syntax error is itself a finding (it cannot be checked)."""
    try:
        tree = ast.parse(source, filename=file)
    except SyntaxError as exc:
        return [Finding(file, exc.lineno or 0, f"does not parse: {exc.msg}")]
    visitor = _Visitor(file)
    visitor.visit(tree)
    return visitor.findings


_SECCOMP_ACTIONS = {
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
}


def validate_seccomp_profile(plugin: str, data: bytes) -> dict[str, object]:
    """A Docker/OCI-style seccomp profile: defaultAction plus syscalls[{names, action}]."""

    def refuse(why: str) -> SecurityProfileError:
        return SecurityProfileError(
            plugin, f"seccomp.json {why}", hint="see docs/plugins.md, 'Security profile'"
        )

    try:
        profile = json.loads(data)
    except ValueError as exc:
        raise refuse(f"is not JSON ({exc})") from None
    if not isinstance(profile, dict):
        raise refuse("must be a JSON object")
    if profile.get("defaultAction") not in _SECCOMP_ACTIONS:
        raise refuse(f"has no valid defaultAction (one of {', '.join(sorted(_SECCOMP_ACTIONS))})")
    rules = profile.get("syscalls", [])
    if not isinstance(rules, list):
        raise refuse("'syscalls' must be a list")
    for index, rule in enumerate(rules):
        names = rule.get("names") if isinstance(rule, dict) else None
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and n.replace("_", "").isalnum() for n in names)
        ):
            raise refuse(f"syscalls[{index}].names must be a non-empty list of syscall names")
        if rule.get("action") not in _SECCOMP_ACTIONS:
            raise refuse(f"syscalls[{index}].action must be one of the SCMP_ACT_* actions")
    return profile
