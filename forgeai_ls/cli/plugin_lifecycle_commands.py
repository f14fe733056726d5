"""``forgeai plugin build|install|update|remove|search|publish``: plugins from archives,
folders and remote registries, installed atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from packaging.version import Version
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from forgeai_ls import __version__
from forgeai_ls.cli.report import print_json
from forgeai_ls.errors import (
    ArchiveError,
    DowngradeError,
    IncompatibleVersionError,
    PluginNotFoundError,
    RegistryNotFoundError,
    UsageError,
)
from forgeai_ls.plugins.archive import (
    ARCHIVE_SUFFIX,
    ArchiveContents,
    archive_name,
    build_archive,
    copy_folder_contents,
    read_archive,
)
from forgeai_ls.plugins.installed_store import checkpoint
from forgeai_ls.plugins.lifecycle import InstallOutcome, PluginLifecycle
from forgeai_ls.plugins.manager import ManagerConfig
from forgeai_ls.plugins.manifest import read_manifest
from forgeai_ls.plugins.signing import sign_folder
from forgeai_ls.plugins.trust import KeyStore
from forgeai_ls.registry.client import RegistryClient, VersionInfo, registry_url

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", help="Registry URL (default: FORGEAI_REGISTRY_URL or config.yaml)."),
]
_err = Console(stderr=True)


def _lifecycle() -> PluginLifecycle:
    return PluginLifecycle(
        ManagerConfig.from_environment(),
        on_lock_wait=lambda: _err.print("waiting for another forgeai command to finish..."),
    )


def registry_client(explicit: str | None) -> RegistryClient:
    """FORGEAI_REGISTRY_TIMEOUT (seconds per request, default 15) and
    FORGEAI_REGISTRY_RETRIES (default 3) tune patience with a slow registry."""
    home = ManagerConfig.from_environment().home
    try:
        timeout = float(os.environ.get("FORGEAI_REGISTRY_TIMEOUT") or 15)
        retries = int(os.environ.get("FORGEAI_REGISTRY_RETRIES") or 3)
    except ValueError:
        raise UsageError(
            "FORGEAI_REGISTRY_TIMEOUT must be seconds and FORGEAI_REGISTRY_RETRIES a count"
        ) from None
    return RegistryClient(
        registry_url(explicit, home),
        home,
        timeout=timeout,
        retries=retries,
        on_first_contact=lambda line: typer.echo(f"forgeai: note: {line}", err=True),
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _download_bar(label: str) -> Iterator[Any]:
    """A progress bar on a terminal; silent otherwise (scripts, --json)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=_err,
        disable=not _err.is_terminal,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(received: int, total: int) -> None:
            progress.update(task, completed=received, total=total)

        yield update


def _report_install(outcome: InstallOutcome, as_json: bool, source: str) -> None:
    if as_json:
        print_json(
            {
                "name": outcome.name,
                "version": outcome.version,
                "previous_version": outcome.previous_version,
                "changed": outcome.changed,
                "trust": outcome.trust,
                "signer": outcome.signer,
                "source": source,
                "repaired": outcome.repaired,
            }
        )
        return
    for line in outcome.repaired:
        _err.print(f"repaired: {line}")
    if not outcome.changed:
        sys.stdout.write(f"{outcome.name} {outcome.version} is already installed\n")
        return
    was = f" (was {outcome.previous_version})" if outcome.previous_version else ""
    signer = f", signed by {outcome.signer}" if outcome.signer else ""
    sys.stdout.write(
        f"installed {outcome.name} {outcome.version}{was} from {source} [{outcome.trust}{signer}]\n"
    )


# -- build ------------------------------------------------------------------------------------


def build(
    path: Annotated[Path, typer.Argument(help="Plugin folder.")],
    sign_key: Annotated[
        str | None, typer.Option("--sign-key", help="Sign the folder with this key first.")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write the archive to.")
    ] = Path("dist"),
    as_json: JsonFlag = False,
) -> int:
    """Build NAME-VERSION.fpkg: the signed plugin folder in one reproducible archive."""
    if not path.is_dir():
        raise PluginNotFoundError(path.name, f"no plugin folder at {path}")
    if sign_key is not None:
        sign_folder(path, KeyStore().private_key(sign_key))
    data, manifest = build_archive(path)
    read_archive(data, "the built archive")  # what we ship passes our own extraction checks
    output.mkdir(parents=True, exist_ok=True)
    target = output / archive_name(manifest.name, manifest.version)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(target)
    digest = _sha256(data)
    if as_json:
        print_json(
            {
                "path": str(target),
                "name": manifest.name,
                "version": manifest.version,
                "sha256": digest,
                "size": len(data),
            }
        )
    else:
        sys.stdout.write(f"built {target} ({len(data)} bytes, sha256 {digest})\n")
    return 0


# -- install ----------------------------------------------------------------------------------


PreOption = Annotated[
    bool, typer.Option("--pre", help="Consider pre-releases (2.0.0rc1, 1.1.dev1) too.")
]


def looks_like_path(source: str) -> bool:
    """A folder or archive argument, as opposed to a registry requirement NAME[@VERSION]."""
    return (
        "/" in source
        or source.startswith(("./", "../", "~", "."))
        or source.endswith(ARCHIVE_SUFFIX)
    )


def _split_requirement(source: str) -> tuple[str, str | None]:
    name, _, version = source.partition("@")
    if not name or (version and not _is_version(version)):
        raise UsageError(
            f"'{source}' is not a plugin folder, an archive, or NAME[@VERSION]",
            hint=f"pass a folder, a {ARCHIVE_SUFFIX} file, or e.g. ruby-executor@1.2.0",
        )
    return name, version or None


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except ValueError:
        return False
    return True


def _choose(
    name: str, versions: list[VersionInfo], wanted: str | None, *, pre: bool = False
) -> VersionInfo:
    """The pinned version (even a yanked one), else the newest compatible final release that
    was not yanked (pre-releases only with ``pre``, as pip's --pre)."""
    if wanted is not None:
        for item in versions:
            if item.parsed() == Version(wanted):
                if item.yanked:
                    typer.echo(
                        f"forgeai: note: {name} {item.version} was yanked by its publisher; "
                        "installing it because it was asked for by version",
                        err=True,
                    )
                if not item.compatible_with(Version(__version__)):
                    raise IncompatibleVersionError(
                        name,
                        f"{item.version} supports ForgeAI {item.minimum_forgeai_version} to "
                        f"{item.maximum_forgeai_version or 'any later'}; this is ForgeAI "
                        f"{__version__}",
                        hint=f"install {name} without @VERSION to get the newest compatible one",
                    )
                return item
        raise RegistryNotFoundError(
            f"the registry has no version {wanted} of '{name}' "
            f"(it has: {', '.join(v.version for v in versions) or 'none'})",
            hint="see 'forgeai plugin info NAME --registry URL'",
        )
    compatible = [
        v
        for v in versions
        if v.compatible_with(Version(__version__))
        and (pre or not v.parsed().is_prerelease)
        and not v.yanked
    ]
    if not compatible:
        raise IncompatibleVersionError(
            name,
            f"no published {'version' if pre else 'final release'} supports ForgeAI "
            f"{__version__} (published: {', '.join(v.version for v in versions) or 'none'})",
            hint="upgrade ForgeAI, or ask the plugin's author for a compatible release"
            + ("" if pre else "; --pre also considers pre-releases"),
        )
    return compatible[-1]


def _install_from_registry(
    lifecycle: PluginLifecycle,
    client: RegistryClient,
    name: str,
    wanted: str | None,
    *,
    allow_downgrade: bool,
    reinstall: bool,
    pre: bool = False,
) -> InstallOutcome:
    chosen = _choose(name, client.versions(name), wanted, pre=pre)
    installed = lifecycle.installed_version(name)
    if installed is not None and chosen.parsed() < installed and not allow_downgrade:
        raise DowngradeError(
            f"{name} {installed} is installed; {chosen.version} is older",
            hint="pass --allow-downgrade to install an older version on purpose",
        )
    with _download_bar(f"{name} {chosen.version}") as progress:
        data = client.download(name, chosen.version, progress)
    checkpoint("downloaded")
    contents = read_archive(data, archive_name(name, chosen.version))
    return lifecycle.install(
        contents,
        "registry",
        client.url,
        sha256=_sha256(data),
        expected=(name, chosen.version),
        expected_key_id=chosen.key_id,
        allow_downgrade=allow_downgrade,
        reinstall=reinstall,
    )


def _local_contents(path: Path) -> tuple[ArchiveContents, str, str | None]:
    if path.is_dir():
        manifest, _ = read_manifest(path)
        return copy_folder_contents(path, manifest.name), "folder", None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path} cannot be read ({exc.strerror})") from None
    return read_archive(data, str(path)), "archive", _sha256(data)


def install(
    source: Annotated[
        str, typer.Argument(help="NAME or NAME@VERSION from the registry, an archive, or a folder.")
    ],
    registry: RegistryOption = None,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Allow replacing with an older version.")
    ] = False,
    reinstall: Annotated[
        bool, typer.Option("--reinstall", help="Install even if this version is installed.")
    ] = False,
    pre: PreOption = False,
    as_json: JsonFlag = False,
) -> int:
    """Install a plugin: verified before anything changes, swapped in atomically.

    As in pip and npm, a bare NAME means the registry; a folder or archive is given as a path
    (./NAME, a path with a '/', or a file ending in .fpkg)."""
    lifecycle = _lifecycle()
    path = Path(source)
    if looks_like_path(source):
        if not path.exists():
            raise PluginNotFoundError(
                path.name, f"no plugin folder or archive at {source}", hint="check the path"
            )
        contents, kind, digest = _local_contents(path)
        outcome = lifecycle.install(
            contents,
            kind,
            str(path.resolve()),
            sha256=digest,
            allow_downgrade=allow_downgrade,
            reinstall=reinstall,
        )
        _report_install(outcome, as_json, str(path))
        return 0
    name, wanted = _split_requirement(source)
    if path.exists():
        typer.echo(
            f"note: installing '{name}' from the registry; for the {source} here, use ./{source}",
            err=True,
        )
    with registry_client(registry) as client:
        outcome = _install_from_registry(
            lifecycle,
            client,
            name,
            wanted,
            allow_downgrade=allow_downgrade,
            reinstall=reinstall,
            pre=pre,
        )
    _report_install(outcome, as_json, client.url)
    return 0


# -- update -----------------------------------------------------------------------------------


def update(
    name: Annotated[
        str | None, typer.Argument(help="Plugin to update (default: every installed plugin).")
    ] = None,
    registry: RegistryOption = None,
    pre: PreOption = False,
    as_json: JsonFlag = False,
) -> int:
    """Update plugins installed from a registry to their newest compatible version (final
    releases only, unless --pre)."""
    lifecycle = _lifecycle()
    repaired = lifecycle.repair()
    installed = lifecycle.installed()
    if name is not None and name not in installed:
        raise PluginNotFoundError(
            name, "is not installed in FORGEAI_HOME/plugins", hint="see 'forgeai plugin list'"
        )
    rows: list[dict[str, Any]] = []
    for plugin_name, plugin in sorted(installed.items()):
        if name is not None and plugin_name != name:
            continue
        origin = plugin.origin
        current = origin.version if origin else None
        if origin is None or (origin.kind != "registry" and registry is None):
            kind = origin.kind if origin else "unknown source"
            rows.append(_row(plugin_name, current, None, f"skipped: installed from {kind}"))
            continue
        with registry_client(registry or origin.location) as client:
            newest = _choose(plugin_name, client.versions(plugin_name), None, pre=pre)
            if current is not None and newest.parsed() <= Version(current):
                rows.append(_row(plugin_name, current, None, "up to date"))
                continue
            outcome = _install_from_registry(
                lifecycle,
                client,
                plugin_name,
                newest.version,
                allow_downgrade=False,
                reinstall=False,
            )
        rows.append(_row(plugin_name, current, outcome.version, "updated"))
    if as_json:
        print_json({"plugins": rows, "repaired": repaired})
        return 0
    for line in repaired:
        _err.print(f"repaired: {line}")
    if not rows:
        sys.stdout.write("no plugins installed from a registry\n")
        return 0
    table = Table("Plugin", "Installed", "Now", "Status")
    for row in rows:
        table.add_row(
            row["name"], row["from"] or "-", row["to"] or row["from"] or "-", row["status"]
        )
    Console().print(table)
    return 0


def _row(name: str, before: str | None, after: str | None, status: str) -> dict[str, Any]:
    return {"name": name, "from": before, "to": after, "status": status}


# -- remove, search, publish --------------------------------------------------------------------


def remove(
    name: Annotated[str, typer.Argument(help="Installed plugin to remove.")],
    as_json: JsonFlag = False,
) -> int:
    """Unregister a plugin, remove its files and its data."""
    outcome = _lifecycle().remove(name)
    if as_json:
        print_json({"name": outcome.name, "version": outcome.version, "removed": True})
    else:
        for line in outcome.repaired:
            _err.print(f"repaired: {line}")
        sys.stdout.write(f"removed {outcome.name} {outcome.version}\n")
    return 0


def search(
    query: Annotated[str, typer.Argument(help="Words in the name, description or languages.")] = "",
    registry: RegistryOption = None,
    as_json: JsonFlag = False,
) -> int:
    """Search the registry's plugins by name, description and language."""
    with registry_client(registry) as client:
        found = client.search(query)
    if as_json:
        print_json({"registry": client.url, "plugins": found})
        return 0
    if not found:
        sys.stdout.write(f"no plugin matches '{query}'\n")
        return 0
    table = Table("Plugin", "Latest", "Languages", "Description")
    for item in found:
        table.add_row(
            str(item.get("name")),
            str(item.get("latest_version")),
            ", ".join(str(x) for x in item.get("languages") or []),
            str(item.get("description") or ""),
        )
    Console().print(table)
    return 0


TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="Publisher token (default: FORGEAI_REGISTRY_TOKEN)."),
]


def _publisher_token(given: str | None, action: str) -> str:
    token = given or os.environ.get("FORGEAI_REGISTRY_TOKEN")
    if not token:
        raise UsageError(
            f"{action} needs a publisher token",
            hint="pass --token or set FORGEAI_REGISTRY_TOKEN (the registry's operator "
            "creates one with 'forgeai registry token create')",
        )
    return token


def publish(
    archive: Annotated[Path, typer.Argument(help=f"A {ARCHIVE_SUFFIX} built by 'plugin build'.")],
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonFlag = False,
) -> int:
    """Upload a signed archive to the registry (versions are immutable once published)."""
    token = _publisher_token(token, "publishing")
    try:
        data = archive.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{archive} cannot be read ({exc.strerror})") from None
    read_archive(data, str(archive)).manifest(str(archive))  # refuse locally what the server would
    with registry_client(registry) as client:
        body = client.publish(data, token)
    if as_json:
        print_json(body)
    else:
        sys.stdout.write(
            f"published {body.get('name')} {body.get('version')} to {client.url} "
            f"(sha256 {body.get('sha256')})\n"
        )
    return 0


def yank(
    requirement: Annotated[str, typer.Argument(help="NAME@VERSION to withdraw.")],
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonFlag = False,
) -> int:
    """Withdraw a published version: install and update skip it from now on; NAME@VERSION
    still installs it (with a warning). It stays downloadable and cannot be published again."""
    token = _publisher_token(token, "yanking")
    name, version = _split_requirement(requirement)
    if version is None:
        raise UsageError(f"'{requirement}' names no version", hint="e.g. my-plugin@1.2.0")
    with registry_client(registry) as client:
        body = client.yank(name, version, token)
    if as_json:
        print_json(body)
    else:
        sys.stdout.write(f"yanked {name} {version} from {client.url}\n")
    return 0


def register(app: typer.Typer) -> None:
    for command in (build, install, update, remove, search, publish, yank):
        app.command(command.__name__)(command)
