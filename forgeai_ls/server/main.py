"""Entry point of ``forgeai-ls``: stdio by default, or --tcp / --ws."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from forgeai_ls import __version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="forgeai-ls", description="The ForgeAI language server.")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="Serve on stdin/stdout (default).")
    transport.add_argument("--tcp", action="store_true", help="Serve over TCP.")
    transport.add_argument("--ws", action="store_true", help="Serve over WebSockets.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2087)
    parser.add_argument("--log-file", help="Write logs here instead of stderr.")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--version", action="version", version=f"forgeai-ls {__version__}")
    args = parser.parse_args(argv)
    # Logs never go to stdout: on stdio, stdout carries only the protocol.
    handler: logging.Handler = (
        logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler(sys.stderr)
    )
    logging.basicConfig(
        level=args.log_level,
        handlers=[handler],
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # pydantic looks for third-party plugins through package metadata on first use (~15 ms);
    # ForgeAI uses none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from forgeai_ls.server.server import create_server

    server = create_server()
    if args.tcp:
        server.start_tcp(args.host, args.port)
    elif args.ws:
        server.start_ws(args.host, args.port)
    else:
        server.start_io()
