"""``forgeai image ...``: build and list the container images of plugins (docker backend)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from forgeai_ls.cli.report import print_json
from forgeai_ls.extras import require_extra

image_app = typer.Typer(
    help="Build and list plugins' container images (built offline, never pulled).",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DockerHost = Annotated[
    str | None,
    typer.Option(
        "--docker-host",
        help="Engine URL, e.g. unix:///tmp/dk/sock (default: $DOCKER_HOST, else the default "
        "socket).",
    ),
]


def _megabytes(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.0f} MB"


@image_app.command("build")
def build(
    plugin: Annotated[str, typer.Argument(help="A loaded plugin's name, or a plugin folder.")],
    docker_host: DockerHost = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Make the root filesystem and the image again even if up to date."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> int:
    """Verify the plugin, make its root filesystem from this host's packages, build its image."""
    require_extra("docker")
    from forgeai_ls.images.build import build_plugin_image, resolve_plugin
    from forgeai_ls.sandbox.docker_engine import docker_client

    verified = resolve_plugin(plugin)
    client = docker_client(docker_host)

    def progress(message: str) -> None:
        sys.stderr.write(f"forgeai: {message}\n")

    result = build_plugin_image(
        verified, client, force=force, progress=None if as_json else progress
    )
    if as_json:
        print_json(result.model_dump(mode="json"))
        return 0
    state = "up to date" if result.up_to_date else f"built in {result.seconds:.1f} s"
    sys.stdout.write(
        f"{result.tag} {state}: {result.image_id[:19]}, {_megabytes(result.size_bytes)}\n"
    )
    return 0


@image_app.command("list")
def list_images(docker_host: DockerHost = None, as_json: JsonFlag = False) -> int:
    """Each loaded plugin's container image and whether the engine has it."""
    require_extra("docker")
    from forgeai_ls.images.build import image_status
    from forgeai_ls.plugins.manager import PluginManager
    from forgeai_ls.sandbox import NativeBackend
    from forgeai_ls.sandbox.docker_engine import docker_client

    manager = PluginManager(NativeBackend())
    blocked = manager.load_all()
    client = docker_client(docker_host)
    statuses = [image_status(p, client) for p in sorted(manager.plugins(), key=lambda p: p.name)]
    if as_json:
        print_json(
            {
                "images": [status.model_dump(mode="json") for status in statuses],
                "blocked": [
                    {"path": str(b.path), "code": b.error.code, "reason": b.error.message}
                    for b in blocked
                ],
            }
        )
        return 0
    table = Table("Plugin", "Image", "Present", "Up to date", "Size")
    for status in statuses:
        table.add_row(
            status.plugin,
            status.image or "-",
            "yes" if status.present else "no",
            "-" if status.up_to_date is None else ("yes" if status.up_to_date else "no"),
            _megabytes(status.size_bytes),
        )
    Console().print(table)
    for item in blocked:
        sys.stderr.write(f"blocked: {item.error.one_line()}\n")
    return 0
