"""Entry point of the ``forgeai`` command.

Start-up is the user's wait: ``--version`` and the root help are answered here without
importing anything, a run goes to the user's ForgeAI daemon when one is up (warm sandboxes,
nothing to import), and everything else loads only the command it runs.
"""

from __future__ import annotations

import sys

from forgeai_ls import __version__
from forgeai_ls.cli.terminal import EXIT_FORGEAI_FAILED


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        sys.stdout.write(f"forgeai {__version__}\n")
        return 0
    if args in ([], ["--help"], ["-h"]):
        from forgeai_ls.cli.commands import root_help

        sys.stdout.write(root_help())
        return 0
    if args[0] == "run":
        from forgeai_ls.cli import daemon_client

        served = daemon_client.run_in_daemon(args)
        if served is not None:
            return served
    from forgeai_ls.cli.app import run_app

    status = run_app(args)
    if args[0] == "run" and status != EXIT_FORGEAI_FAILED:  # it ran: the next one may too
        from forgeai_ls.cli import daemon_client

        daemon_client.start_daemon_for_next_time(args)
    return status


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
