"""The languages ForgeAI runs before the plugin pipeline exists.

Each entry is exactly the declarative section an official plugin's manifest will carry; the
plugin pipeline replaces this table without changing ``LanguageExecutor``.
"""

from __future__ import annotations

from forgeai_ls.plugins.language import LanguageSpec, LimitOverrides

BUILTIN_PLUGIN = "forgeai-builtin"

_JVM = ("-XX:MaxRAM={memory_bytes}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss8m")

BUILTIN_LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        name="python",
        display_name="Python",
        aliases=("py", "python3"),
        extensions=(".py", ".pyw"),
        source_file="main.py",
        run=("python3", "{source}"),
        env={"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1"},
    ),
    LanguageSpec(
        name="javascript",
        display_name="JavaScript (Node.js)",
        aliases=("js", "node", "nodejs"),
        extensions=(".js", ".mjs", ".cjs"),
        source_file="main.js",
        run=("node", "{source}"),
    ),
    LanguageSpec(
        name="bash",
        display_name="Bash",
        aliases=("sh", "shell"),
        extensions=(".sh", ".bash"),
        source_file="main.sh",
        run=("bash", "{source}"),
    ),
    LanguageSpec(
        name="c",
        display_name="C",
        aliases=(),
        extensions=(".c",),
        source_file="main.c",
        compile=("gcc", "-std=gnu17", "-O1", "-Wall", "-o", "{build}/main", "{source}", "-lm"),
        run=("stdbuf", "-oL", "-eL", "{build}/main"),
    ),
    LanguageSpec(
        name="cpp",
        display_name="C++",
        aliases=("c++", "cxx"),
        extensions=(".cpp", ".cc", ".cxx", ".c++"),
        source_file="main.cpp",
        compile=("g++", "-std=gnu++17", "-O1", "-Wall", "-o", "{build}/main", "{source}"),
        run=("stdbuf", "-oL", "-eL", "{build}/main"),
    ),
    LanguageSpec(
        name="rust",
        display_name="Rust",
        aliases=("rs",),
        extensions=(".rs",),
        source_file="main.rs",
        compile=("rustc", "--edition=2021", "-C", "debuginfo=0", "-o", "{build}/main", "{source}"),
        run=("{build}/main",),
    ),
    LanguageSpec(
        name="java",
        display_name="Java",
        aliases=(),
        extensions=(".java",),
        source_file="Main.java",
        main_name_pattern=r"^\s*public\s+(?:final\s+)?class\s+([A-Za-z_$][\w$]*)",
        compile=("javac", *(f"-J{flag}" for flag in _JVM), "-d", "{build}", "{source}"),
        run=("java", *_JVM, "-cp", "{build}", "{stem}"),
        compile_limits=LimitOverrides(processes=512),
        run_limits=LimitOverrides(processes=256),
    ),
)
