"""Every built-in language runs in the real sandbox: output, exit codes, stderr, stdin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import executor_for, run_code

pytestmark = pytest.mark.sandbox

HELLO = {
    "python": 'print("Hello, ForgeAI")',
    "javascript": 'console.log("Hello, ForgeAI")',
    "bash": 'echo "Hello, ForgeAI"',
    "c": '#include <stdio.h>\nint main(void) { puts("Hello, ForgeAI"); return 0; }',
    "cpp": '#include <iostream>\nint main() { std::cout << "Hello, ForgeAI" << std::endl; }',
    "rust": 'fn main() { println!("Hello, ForgeAI"); }',
    "java": "public class Hello {\n  public static void main(String[] a) {\n"
    '    System.out.println("Hello, ForgeAI");\n  }\n}',
}

EXIT_AND_STDERR = {
    "python": 'import sys\nprint("to stderr", file=sys.stderr)\nsys.exit(7)',
    "javascript": 'console.error("to stderr"); process.exit(7)',
    "bash": 'echo "to stderr" >&2; exit 7',
    "c": '#include <stdio.h>\nint main(void) { fputs("to stderr\\n", stderr); return 7; }',
    "cpp": '#include <iostream>\nint main() { std::cerr << "to stderr" << std::endl; return 7; }',
    "rust": 'fn main() { eprintln!("to stderr"); std::process::exit(7); }',
    "java": "public class Main {\n  public static void main(String[] a) {\n"
    '    System.err.println("to stderr"); System.exit(7);\n  }\n}',
}

ECHO_STDIN = {
    "python": "import sys\nprint(sys.stdin.read().upper(), end='')",
    "javascript": "let s='';process.stdin.on('data',d=>s+=d);"
    "process.stdin.on('end',()=>process.stdout.write(s.toUpperCase()));",
    "bash": "tr a-z A-Z",
    "c": "#include <stdio.h>\n#include <ctype.h>\n"
    "int main(void){int c;while((c=getchar())!=EOF)putchar(toupper(c));return 0;}",
    "cpp": "#include <iostream>\n#include <cctype>\n"
    "int main(){char c;while(std::cin.get(c))std::cout<<(char)std::toupper(c);}",
    "rust": "use std::io::Read;\nfn main(){let mut s=String::new();"
    'std::io::stdin().read_to_string(&mut s).unwrap();print!("{}", s.to_uppercase());}',
    "java": "public class Main {\n  public static void main(String[] a) throws Exception {\n"
    "    System.out.print(new String(System.in.readAllBytes()).toUpperCase());\n  }\n}",
}


@pytest.mark.parametrize("language", sorted(HELLO))
async def test_hello_world(language: str) -> None:
    """Each language prints hello world and exits 0."""
    result = await run_code(language, HELLO[language])
    assert result.stderr == b""
    assert result.stdout == b"Hello, ForgeAI\n"
    assert result.exit_code == 0
    assert result.limit is None


@pytest.mark.parametrize("language", sorted(EXIT_AND_STDERR))
async def test_exit_code_and_stderr_pass_through(language: str) -> None:
    """The program's own exit status and stderr reach the caller unchanged."""
    result = await run_code(language, EXIT_AND_STDERR[language])
    assert result.exit_code == 7
    assert result.signal is None
    assert result.stderr.strip() == b"to stderr"
    assert result.limit is None


@pytest.mark.parametrize("language", sorted(ECHO_STDIN))
async def test_stdin_reaches_the_program(language: str) -> None:
    """Bytes given as stdin are what the program reads."""
    result = await run_code(language, ECHO_STDIN[language], stdin=b"forge ai\nline two\n")
    assert result.stdout == b"FORGE AI\nLINE TWO\n"
    assert result.exit_code == 0


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("c", "int main(void) { return undefined_name; }"),
        ("rust", 'fn main() { let x: u32 = "text"; }'),
        ("java", "public class Main { public static void main(String[] a) { int x = ; } }"),
    ],
)
async def test_compile_error_stops_before_running(language: str, code: str) -> None:
    """A compile error is reported from the compile step and nothing runs."""
    result = await run_code(language, code)
    assert result.compile_failed
    assert result.run is None
    assert result.exit_code not in (0, None)
    assert b"error" in result.stderr.lower()


async def test_java_snippet_file_takes_its_public_class_name() -> None:
    """A Java snippet is saved as <PublicClass>.java so javac accepts it."""
    result = await run_code("java", HELLO["java"])
    assert result.compile is not None and result.compile.exit_code == 0
    assert result.stdout == b"Hello, ForgeAI\n"


async def test_execute_file_keeps_the_files_name(tmp_path: Path) -> None:
    """The seed's ExecuteFile runs a file under its own name, so messages name it."""
    program = tmp_path / "greet_user.py"
    program.write_text("print(__file__)\nraise SystemExit('bye')\n")
    executor = executor_for("python")
    assert executor.supported_languages() == ["python"]
    result = await executor.execute_file(program)
    assert result.stdout == b"/work/greet_user.py\n"
    assert (result.exit_code, result.stderr) == (1, b"bye\n")
