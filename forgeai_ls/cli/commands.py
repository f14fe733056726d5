"""The ``forgeai`` commands: where each is defined, and the root help made from them.

The command line loads a command's module only when that command runs, so ``forgeai run``
never imports the registry, image or docker modules and ``--version`` / ``--help`` import
almost nothing. ``tests/cli/test_startup.py`` checks this table against the commands.
"""

from __future__ import annotations

from typing import NamedTuple


class CommandEntry(NamedTuple):
    module: str
    attribute: str
    """The module's typer app holding the command (or the command group)."""
    summary: str
    """The first line of the command's help."""


COMMANDS: dict[str, CommandEntry] = {
    "run": CommandEntry(
        "forgeai_ls.cli.run",
        "app",
        "Run FILE (or -l LANG -c CODE) in the sandbox, streaming its output.",
    ),
    "languages": CommandEntry(
        "forgeai_ls.cli.languages",
        "app",
        "List the languages ForgeAI can run, with aliases, extensions and plugin.",
    ),
    "doctor": CommandEntry(
        "forgeai_ls.cli.doctor_command",
        "app",
        "Check what this machine gives ForgeAI: sandbox, limits, seccomp, engines, toolchains.",
    ),
    "daemon": CommandEntry(
        "forgeai_ls.cli.daemon_commands",
        "daemon_app",
        "The per-user daemon that serves 'forgeai run' from warm sandboxes.",
    ),
    "plugin": CommandEntry(
        "forgeai_ls.cli.plugin_commands",
        "plugin_app",
        "Manage and develop executor plugins.",
    ),
    "key": CommandEntry(
        "forgeai_ls.cli.key_commands", "key_app", "Signing keys and the trust store."
    ),
    "registry": CommandEntry(
        "forgeai_ls.cli.registry_commands",
        "registry_app",
        "Run a plugin registry and manage its tokens.",
    ),
    "image": CommandEntry(
        "forgeai_ls.cli.image_commands",
        "image_app",
        "Build and list plugins' container images (built offline, never pulled).",
    ),
}

DESCRIPTION = "Run code you do not trust, in a sandbox, with limits."


def root_help() -> str:
    width = max(len(name) for name in COMMANDS) + 2
    commands = "".join(f"  {name:<{width}}{entry.summary}\n" for name, entry in COMMANDS.items())
    return (
        "Usage: forgeai [OPTIONS] COMMAND [ARGS]...\n\n"
        f"  {DESCRIPTION}\n\n"
        "  'forgeai COMMAND --help' describes each command.\n\n"
        "Options:\n"
        "  --version  Print the version and exit.\n"
        "  --help     Show this message and exit.\n\n"
        f"Commands:\n{commands}"
    )
