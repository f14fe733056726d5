"""``forgeai key ...``: your signing keys and the keys you trust."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from forgeai_ls.cli.report import print_json
from forgeai_ls.errors import KeyStoreError
from forgeai_ls.plugins.trust import KeyStore, TrustLevel, TrustStore, load_public_key_text

key_app = typer.Typer(help="Signing keys and the trust store.", no_args_is_help=True)


@key_app.command("generate")
def generate(name: Annotated[str, typer.Argument(help="A name for the key pair.")]) -> int:
    """Create an Ed25519 key pair in FORGEAI_HOME/keys (NAME.key private, NAME.pub public)."""
    key_id, path = KeyStore().generate(name)
    sys.stdout.write(
        f"generated key '{name}' ({key_id}); private key {path}, public key "
        f"{path.with_suffix('.pub')}\n"
    )
    return 0


@key_app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json")] = False) -> int:
    """Your own keys and the trusted ones with their levels."""
    store = KeyStore()
    own = store.names()
    trusted = sorted(TrustStore().entries().values(), key=lambda e: (-e.level, e.name))
    if as_json:
        print_json(
            {
                "own": [{"name": name, "key_id": store.key_id(name)} for name in own],
                "trusted": [
                    {"key_id": e.key_id, "name": e.name, "level": e.level.label} for e in trusted
                ],
            }
        )
        return 0
    table = Table("Key id", "Name", "Level", "Trusted since")
    for entry in trusted:
        since = datetime.fromtimestamp(entry.added_at, UTC).strftime("%Y-%m-%d")
        table.add_row(entry.key_id, entry.name, entry.level.label, since)
    Console().print(table)
    listed = ", ".join(f"{name} ({store.key_id(name)})" for name in own)
    sys.stdout.write("own keys: " + (listed or "none") + "\n")
    return 0


@key_app.command("trust")
def trust(
    public_key: Annotated[Path, typer.Argument(help="A NAME.pub file.")],
    level: Annotated[
        str, typer.Option("--level", help="official, enterprise, verified or community.")
    ] = "community",
    name: Annotated[str | None, typer.Option("--name", help="Who the key belongs to.")] = None,
) -> int:
    """Trust a publisher's public key at a level."""
    try:
        text = public_key.read_text()
    except OSError as exc:
        raise KeyStoreError(f"{public_key}: cannot be read ({exc.strerror})") from None
    entry = TrustStore().trust(
        load_public_key_text(text), name or public_key.stem, TrustLevel.parse(level)
    )
    sys.stdout.write(f"trusted {entry.name} ({entry.key_id}) as {entry.level.label}\n")
    return 0


@key_app.command("untrust")
def untrust(key: Annotated[str, typer.Argument(help="Key id or name.")]) -> int:
    """Remove a key from the trust store; plugins it signed stop loading."""
    entry = TrustStore().untrust(key)
    sys.stdout.write(f"no longer trusted: {entry.name} ({entry.key_id})\n")
    return 0
