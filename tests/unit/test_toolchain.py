"""Resolving commands through version-manager proxies to the real toolchain."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from forgeai_ls.errors import ToolchainNotFoundError
from forgeai_ls.sandbox.toolchain import ToolchainResolver


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_pyenv_shim_resolves_to_the_versions_prefix(tmp_path: Path) -> None:
    """A pyenv shim is followed to the interpreter, whose prefix becomes the mount."""
    root = tmp_path / "pyenv"
    (root / "libexec").mkdir(parents=True)
    real = _executable(root / "versions" / "3.99.0" / "bin" / "python3", "#!/bin/sh\n")
    _executable(root / "shims" / "python3", "#!/bin/sh\nexec pyenv exec python3\n")
    _executable(root / "bin" / "pyenv", f'#!/bin/sh\n[ "$1" = which ] && echo {real}\n')
    resolver = ToolchainResolver({"PATH": f"{root / 'shims'}:/usr/bin:/bin"})
    resolved = resolver.resolve("python3")
    assert resolved.executable == str(real)
    assert resolved.toolchain_root == str(root / "versions" / "3.99.0")


def test_rustup_proxy_resolves_to_the_toolchain(tmp_path: Path) -> None:
    """A rustup proxy (a link to rustup named rustc) is asked which rustc it runs."""
    toolchain = tmp_path / "rustup" / "toolchains" / "stable"
    real = _executable(toolchain / "bin" / "rustc", "#!/bin/sh\n")
    rustup = _executable(
        tmp_path / "cargo" / "bin" / "rustup", f'#!/bin/sh\n[ "$1" = which ] && echo {real}\n'
    )
    os.symlink(rustup, tmp_path / "cargo" / "bin" / "rustc")
    resolved = ToolchainResolver({"PATH": str(tmp_path / "cargo" / "bin")}).resolve("rustc")
    assert resolved.executable == str(real)
    assert resolved.toolchain_root == str(toolchain)


def test_system_tools_need_no_mount() -> None:
    """Tools under /usr are already in every sandbox."""
    resolved = ToolchainResolver({"PATH": "/usr/bin:/bin"}).resolve("sh")
    assert resolved.executable.startswith(("/usr/", "/bin/"))
    assert resolved.toolchain_root is None


def test_a_tool_directly_in_home_mounts_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool in ~/bin never exposes the whole home directory."""
    monkeypatch.setenv("HOME", str(tmp_path))
    tool = _executable(tmp_path / "bin" / "mytool", "#!/bin/sh\n")
    resolved = ToolchainResolver({"PATH": str(tmp_path / "bin")}).resolve("mytool")
    assert resolved.toolchain_root == str(tool)


def test_missing_tool_is_a_clear_error() -> None:
    """A language whose compiler is absent says which command is missing."""
    with pytest.raises(ToolchainNotFoundError, match="'no-such-compiler' was not found"):
        ToolchainResolver({"PATH": "/usr/bin"}).resolve("no-such-compiler")


def test_pyenv_choice_is_read_without_running_pyenv(tmp_path: Path) -> None:
    """PYENV_VERSION, then .python-version, then the global file pick the interpreter."""
    root = tmp_path / "pyenv"
    (root / "libexec").mkdir(parents=True)
    for version in ("3.10.1", "3.12.2"):
        _executable(root / "versions" / version / "bin" / "python3", "#!/bin/sh\n")
    _executable(root / "shims" / "python3", "#!/bin/sh\nexit 99\n")
    _executable(root / "bin" / "pyenv", "#!/bin/sh\nexit 1\n")  # must not be needed
    (root / "version").write_text("3.10.1\n")
    project = tmp_path / "project" / "src"
    project.mkdir(parents=True)
    path = f"{root / 'shims'}:/usr/bin"

    def chosen(**env: str) -> str:
        return (
            ToolchainResolver({"PATH": path, "PWD": str(project), **env})
            .resolve("python3")
            .executable
        )

    assert chosen().endswith("versions/3.10.1/bin/python3")
    (tmp_path / "project" / ".python-version").write_text("3.12.2\n")
    assert chosen().endswith("versions/3.12.2/bin/python3")
    assert chosen(PYENV_VERSION="3.10.1").endswith("versions/3.10.1/bin/python3")


def _home_with_secrets(home: Path) -> None:
    """A desktop user's home: keyrings and an editor's history under ~/.local."""
    (home / ".local" / "share" / "keyrings").mkdir(parents=True)
    (home / ".local" / "share" / "keyrings" / "login.keyring").write_text("secret")
    (home / ".local" / "state" / "nvim" / "shada").mkdir(parents=True)
    (home / ".ssh").mkdir()


def test_a_tool_in_dot_local_bin_mounts_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """~/.local/bin/<tool> as a plain file: ~/.local holds other programs' data (keyrings,
    editor state), so only the executable is mounted."""
    monkeypatch.setenv("HOME", str(tmp_path))
    _home_with_secrets(tmp_path)
    tool = _executable(tmp_path / ".local" / "bin" / "mytool", "#!/bin/sh\n")
    resolved = ToolchainResolver({"PATH": str(tool.parent)}).resolve("mytool")
    assert resolved.toolchain_root == str(tool)


@pytest.mark.parametrize(
    "prefix",
    [".pyenv/versions/3.99.0", ".rustup/toolchains/stable-x86_64-unknown-linux-gnu", "opt/tool"],
)
def test_a_dedicated_prefix_is_mounted_not_what_is_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    """pyenv- and rustup-style prefixes are the mount (their libraries live there), with the
    secrets of the same home left out."""
    monkeypatch.setenv("HOME", str(tmp_path))
    _home_with_secrets(tmp_path)
    tool = _executable(tmp_path / prefix / "bin" / "tool", "#!/bin/sh\n")
    resolved = ToolchainResolver({"PATH": str(tool.parent)}).resolve("tool")
    assert resolved.toolchain_root == str(tmp_path / prefix)


@pytest.mark.parametrize("marker", ["share/keyrings", ".ssh", ".gnupg", "state/nvim"])
def test_a_prefix_with_a_users_data_in_it_mounts_only_the_tool(tmp_path: Path, marker: str) -> None:
    """Wherever it is, a would-be prefix that holds a user's data is not mounted."""
    prefix = tmp_path / "somewhere" / "prefix"
    (prefix / marker).mkdir(parents=True)
    tool = _executable(prefix / "bin" / "tool", "#!/bin/sh\n")
    resolved = ToolchainResolver({"PATH": str(tool.parent)}).resolve("tool")
    assert resolved.toolchain_root == str(tool)
