"""``forgeai registry ...``: run a plugin registry and give publishers their tokens."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from forgeai_ls.cli.report import print_json
from forgeai_ls.errors import KeyStoreError, RegistryServerError
from forgeai_ls.extras import require_extra
from forgeai_ls.home import forgeai_home
from forgeai_ls.plugins.signing import key_id
from forgeai_ls.plugins.trust import load_public_key_text
from forgeai_ls.registry.storage import DATABASE_NAME, SQLiteMetadataStore
from forgeai_ls.registry.tokens import TOKEN_PREFIX, create_token, token_sha256

registry_app = typer.Typer(
    help="Run a plugin registry and manage its tokens.", no_args_is_help=True
)
token_app = typer.Typer(help="Publisher tokens.", no_args_is_help=True)
registry_app.add_typer(token_app, name="token")

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Registry data folder (default: $FORGEAI_REGISTRY_DATA or FORGEAI_HOME/registry).",
        show_default=False,
    ),
]


def data_directory(explicit: Path | None) -> Path:
    """--data, else $FORGEAI_REGISTRY_DATA, else FORGEAI_HOME/registry."""
    if explicit is not None:
        return explicit
    configured = os.environ.get("FORGEAI_REGISTRY_DATA")
    return Path(configured) if configured else forgeai_home() / "registry"


@registry_app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")
    ] = 8080,
    data: DataOption = None,
    max_archive_mb: Annotated[
        int | None,
        typer.Option(
            "--max-archive-mb", min=1, max=1024, help="Largest accepted upload in MiB (32)."
        ),
    ] = None,
) -> int:
    """Serve the registry API until SIGTERM or Ctrl-C."""
    require_extra("registry")
    from forgeai_ls.registry.serving import serve_registry

    limits = {} if max_archive_mb is None else {"max_archive_bytes": max_archive_mb << 20}
    serve_registry(host, port, data_directory(data), **limits)
    return 0


def _public_key(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise KeyStoreError(
            f"{path}: cannot be read ({exc.strerror})",
            hint="pass the NAME.pub file made by 'forgeai key generate NAME'",
        ) from None


@token_app.command("create")
def token_create(
    publisher: Annotated[str, typer.Argument(help="Publisher name (created if new).")],
    keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            help="A signing public key (NAME.pub) the publisher may sign with; repeatable.",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Create a token for PUBLISHER; the token is printed once and not stored."""
    public_keys = [load_public_key_text(_public_key(path)) for path in keys or []]
    store = SQLiteMetadataStore(data_directory(data) / DATABASE_NAME)
    try:
        token = create_token(store, publisher, public_keys)
        record = store.publisher(publisher)
        registered = sorted(record.keys) if record else []
    finally:
        store.close()
    if as_json:
        print_json(
            {
                "publisher": publisher,
                "token": token,
                "key_ids": [key_id(public_key) for public_key in public_keys],
                "registered_key_ids": registered,
            }
        )
        return 0
    sys.stdout.write(token + "\n")
    sys.stderr.write(
        f"forgeai registry: token for publisher '{publisher}' (signing keys: "
        f"{', '.join(registered)}); it is shown only this once\n"
    )
    return 0


TOKEN_ID_LENGTH = 12
"""A token is shown by the first characters of its sha256 (the token itself is not stored)."""


@token_app.command("list")
def token_list(
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Every token: its id (the start of its sha256), publisher and creation time."""
    store = SQLiteMetadataStore(data_directory(data) / DATABASE_NAME)
    try:
        tokens = store.tokens()
    finally:
        store.close()
    rows = [
        {"id": t.token_sha256[:TOKEN_ID_LENGTH], "publisher": t.publisher, "created": t.created_at}
        for t in tokens
    ]
    if as_json:
        print_json({"tokens": rows})
        return 0
    for row in rows:
        sys.stdout.write(f"{row['id']}  {row['publisher']}  {row['created']}\n")
    if not rows:
        sys.stderr.write("forgeai registry: no tokens\n")
    return 0


@token_app.command("revoke")
def token_revoke(
    token: Annotated[
        str, typer.Argument(help="The token's id from 'token list' (or the token itself).")
    ],
    data: DataOption = None,
) -> int:
    """Revoke a token at once: uploads with it are refused (401) from now on."""
    digest_or_prefix = token_sha256(token) if token.startswith(TOKEN_PREFIX) else token.lower()
    store = SQLiteMetadataStore(data_directory(data) / DATABASE_NAME)
    try:
        matches = [t for t in store.tokens() if t.token_sha256.startswith(digest_or_prefix)]
        if len(digest_or_prefix) < 8 or len(matches) != 1:
            raise RegistryServerError(
                f"'{token}' names {len(matches) if len(digest_or_prefix) >= 8 else 'no'} "
                "token(s); give the id 'forgeai registry token list' shows (8+ characters)",
                hint="forgeai registry token list",
            )
        with store.transaction() as transaction:
            transaction.remove_token(matches[0].token_sha256)
    finally:
        store.close()
    sys.stderr.write(
        f"forgeai registry: revoked token {matches[0].token_sha256[:TOKEN_ID_LENGTH]} "
        f"of publisher '{matches[0].publisher}'\n"
    )
    return 0


key_app = typer.Typer(help="Publishers' signing keys.", no_args_is_help=True)
registry_app.add_typer(key_app, name="key")


@key_app.command("remove")
def key_remove(
    publisher: Annotated[str, typer.Argument(help="The publisher.")],
    key: Annotated[str, typer.Argument(help="The key id (as 'forgeai key list' shows it).")],
    data: DataOption = None,
) -> int:
    """Stop accepting uploads signed with KEY for PUBLISHER (a lost or leaked key). Versions
    already published stay: their signatures remain valid for clients that trust the key."""
    store = SQLiteMetadataStore(data_directory(data) / DATABASE_NAME)
    try:
        with store.transaction() as transaction:
            if not transaction.remove_publisher_key(publisher, key):
                raise RegistryServerError(
                    f"publisher '{publisher}' has no registered key {key}",
                    hint="see the key ids 'forgeai registry token create --json' reported",
                )
    finally:
        store.close()
    sys.stderr.write(f"forgeai registry: key {key} no longer accepted for '{publisher}'\n")
    return 0
