"""``forgeai plugin ...``: list, info, verify, sign, create and test plugins (the lifecycle
commands, build to publish, are in plugin_lifecycle_commands)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from forgeai_ls import __version__
from forgeai_ls.cli import plugin_lifecycle_commands
from forgeai_ls.cli.report import print_json
from forgeai_ls.errors import PluginNotFoundError, UsageError
from forgeai_ls.home import bundled_plugins_dir
from forgeai_ls.plugins.archive import ARCHIVE_SUFFIX, read_archive, write_contents
from forgeai_ls.plugins.installed_store import PluginStore
from forgeai_ls.plugins.loader import PluginSource, VerifiedPlugin
from forgeai_ls.plugins.manager import ManagerConfig, PluginManager
from forgeai_ls.plugins.signing import read_plugin_files, sign_folder
from forgeai_ls.plugins.testing import read_test_cases, run_case
from forgeai_ls.plugins.trust import KeyStore, TrustPolicy
from forgeai_ls.sandbox import NativeBackend

plugin_app = typer.Typer(help="Manage and develop executor plugins.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
plugin_lifecycle_commands.register(plugin_app)


def _manager(policy: TrustPolicy | None = None) -> PluginManager:
    config = ManagerConfig.from_environment()
    if policy is not None:
        config = ManagerConfig(
            home=config.home,
            extra_dirs=config.extra_dirs,
            policy=policy,
            bundled_dir=config.bundled_dir,
        )
    return PluginManager(NativeBackend(), config)


def _require_folder(path: Path) -> None:
    if not path.is_dir():
        raise PluginNotFoundError(path.name, f"no plugin folder at {path}")


def _source_of(path: Path) -> PluginSource:
    bundled = bundled_plugins_dir().resolve()
    return PluginSource.BUNDLED if path.resolve().parent == bundled else PluginSource.EXTRA


def _print_fields(description: dict[str, object]) -> None:
    for key, value in description.items():
        sys.stdout.write(f"{key:18} {value}\n")


def _describe(plugin: VerifiedPlugin) -> dict[str, object]:
    manifest = plugin.manifest
    return {
        "name": manifest.name,
        "version": manifest.version,
        "description": manifest.description,
        "author": manifest.author,
        "license": manifest.license,
        "source": plugin.source.value,
        "path": str(plugin.path),
        "trust": plugin.trust_label,
        "signer": plugin.signer.name if plugin.signer else None,
        "key_id": plugin.signer.key_id if plugin.signer else None,
        "languages": [spec.name for spec in manifest.languages],
        "dependencies": list(manifest.dependencies),
        "forgeai_versions": [manifest.minimum_forgeai_version, manifest.maximum_forgeai_version],
        "security_level": manifest.security_level.value,
        "code": manifest.entry_point,
        "content_digest": plugin.content_digest,
        "findings": [str(f) for f in plugin.findings],
    }


@plugin_app.command("list")
def list_plugins(as_json: JsonFlag = False) -> int:
    """Installed plugins, their trust and languages; refused ones with the reason."""
    manager = _manager()
    blocked = manager.load_all()
    if as_json:
        print_json(
            {
                "plugins": [_describe(p) for p in manager.plugins()],
                "blocked": [
                    {"path": str(b.path), "code": b.error.code, "reason": b.error.message}
                    for b in blocked
                ],
            }
        )
        return 0
    table = Table("Plugin", "Version", "Languages", "Trust", "Source")
    for plugin in sorted(manager.plugins(), key=lambda p: p.name):
        table.add_row(
            plugin.name,
            plugin.manifest.version,
            ", ".join(s.name for s in plugin.manifest.languages),
            plugin.trust_label,
            plugin.source.value,
        )
    Console().print(table)
    for item in blocked:
        sys.stderr.write(f"blocked: {item.error.one_line()}\n")
    return 0


@plugin_app.command("info")
def info(
    name: Annotated[str, typer.Argument(help="Plugin name.")],
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Ask this registry (default: the configured one)."),
    ] = None,
    remote: Annotated[
        bool, typer.Option("--remote", help="Show the registry's metadata, not the local plugin.")
    ] = False,
    as_json: JsonFlag = False,
) -> int:
    """Everything about one plugin: installed, else (or with --remote) from the registry."""
    found = []
    if not remote:
        manager = _manager()
        manager.load_all()
        found = [p for p in manager.plugins() if p.name == name]
    if found:
        description = _describe(found[0])
        origin = PluginStore(manager.config.home / "plugins").installed().get(name)
        if origin is not None and origin.origin is not None:
            description["installed_from"] = f"{origin.origin.kind} {origin.origin.location}"
    elif remote or registry or os.environ.get("FORGEAI_REGISTRY_URL"):
        with plugin_lifecycle_commands.registry_client(registry) as client:
            description = client.metadata(name)
    else:
        raise PluginNotFoundError(
            name,
            "is not installed (or was refused)",
            hint="see 'forgeai plugin list', or ask a registry with --registry URL",
        )
    if as_json:
        print_json(description)
    else:
        _print_fields(description)
    return 0


@plugin_app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help=f"Plugin folder or {ARCHIVE_SUFFIX} archive.")],
    as_json: JsonFlag = False,
) -> int:
    """Every check before loading: manifest, signature, trust, compatibility, dependencies."""
    if path.is_file():
        return _verify_archive(path, as_json)
    _require_folder(path)
    return _report_verified(_manager().loader.verify(path, _source_of(path)), as_json, {})


def _verify_archive(path: Path, as_json: bool) -> int:
    data = path.read_bytes()
    contents = read_archive(data, str(path))
    manifest = contents.manifest(str(path))
    with tempfile.TemporaryDirectory(prefix="forgeai-verify-") as scratch:
        folder = Path(scratch) / manifest.name
        write_contents(contents, folder)
        plugin = _manager().loader.verify(folder, PluginSource.EXTRA)
        plugin.path = path
        extra = {
            "archive_sha256": hashlib.sha256(data).hexdigest(),
            "archive_size": len(data),
            "files": read_plugin_files(folder, manifest.name).digests(),
        }
        return _report_verified(plugin, as_json, extra)


def _report_verified(plugin: VerifiedPlugin, as_json: bool, extra: dict[str, object]) -> int:
    description = _describe(plugin) | {"compatible_with": __version__} | extra
    if as_json:
        print_json(description)
        return 0
    manifest = plugin.manifest
    span = f"{manifest.minimum_forgeai_version} to {manifest.maximum_forgeai_version or 'any'}"
    sys.stdout.write(
        f"{plugin.name} {manifest.version}: verified ({plugin.trust_label}"
        + (f", signed by {plugin.signer.name} {plugin.signer.key_id}" if plugin.signer else "")
        + ")\n"
    )
    sys.stdout.write(f"compatible: ForgeAI {span}; this is {__version__}\n")
    sys.stdout.write(f"content digest {plugin.content_digest}\n")
    if "archive_sha256" in extra:
        sys.stdout.write(
            f"archive sha256 {extra['archive_sha256']} ({extra['archive_size']} bytes)\n"
        )
    return 0


@plugin_app.command("sign")
def sign(
    path: Annotated[Path, typer.Argument(help="Plugin folder.")],
    key: Annotated[str, typer.Option("--key", help="Name of your signing key.")],
) -> int:
    """Sign a plugin folder with one of your keys (writes SIGNATURE.json)."""
    _require_folder(path)
    document = sign_folder(path, KeyStore().private_key(key))
    sys.stdout.write(
        f"signed {document['plugin']} {document['version']} with key "
        f"{document['key_id']} ({len(document['files'])} files)\n"
    )
    return 0


SCAFFOLD_MANIFEST = """\
name: {name}
version: 0.1.0
description: {language} executor for ForgeAI
author: {author}
license: MIT
supported_languages: [{language}]
dependencies: [{interpreter}]
minimum_forgeai_version: 0.1.0
maximum_forgeai_version: 0.99.0
security_level: high
languages:
  - name: {language}
    display_name: "{language}"
    aliases: []
    extensions: ["{extension}"]
    source_file: main{extension}
    # compile: [compiler, -o, "{{build}}/main", "{{source}}"]   (compiled languages)
    run: [{interpreter}, "{{source}}"]
    diagnostics:
      - pattern: 'File "(?P<file>[^"]+)", line (?P<line>\\d+)'
        pick: last
"""

SCAFFOLD_TESTS = """\
# Programs 'forgeai plugin test' runs; adapt them to your language.
cases:
  - name: hello
    code: |
      print("Hello, ForgeAI")
    stdout: "Hello, ForgeAI\\n"
  - name: runtime-error
    code: |
      x = 1
      raise ValueError("boom")
    diagnostic_line: 2
"""


@plugin_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Plugin name (lowercase, dashes).")],
    language: Annotated[str | None, typer.Option("--language", help="Language it runs.")] = None,
    interpreter: Annotated[
        str, typer.Option("--interpreter", help="Command that runs a source file.")
    ] = "python3",
    extension: Annotated[str, typer.Option("--extension", help="Source extension.")] = ".py",
    directory: Annotated[Path, typer.Option("--dir", help="Where to create it.")] = Path("."),
) -> int:
    """Scaffold a working declarative plugin, with test programs, ready to edit."""
    target = directory / name
    if target.exists():
        raise UsageError(f"{target} already exists", hint="choose another name or --dir")
    language = language or name.removesuffix("-executor")
    target.mkdir(parents=True)
    (target / "plugin.yaml").write_text(
        SCAFFOLD_MANIFEST.format(
            name=name, language=language, interpreter=interpreter, extension=extension, author="you"
        )
    )
    (target / "tests.yaml").write_text(SCAFFOLD_TESTS)
    (target / "README.md").write_text(
        textwrap.dedent(f"""\
        # {name}

        A ForgeAI executor plugin for {language}. Edit `plugin.yaml` (commands, extensions,
        diagnostic patterns) and `tests.yaml`, then:

            forgeai plugin test {target}
            forgeai plugin sign {target} --key YOURKEY
        """)
    )
    # Validate what was written through the real pipeline (unsigned is fine while developing).
    _manager(TrustPolicy(allow_unsigned=True)).loader.verify(target, PluginSource.EXTRA)
    sys.stdout.write(f"created {target}; try: forgeai plugin test {target}\n")
    return 0


@plugin_app.command("test")
def test(
    path: Annotated[Path, typer.Argument(help="Plugin folder.")], as_json: JsonFlag = False
) -> int:
    """Run the plugin's test programs in the sandbox; report pass/fail per case."""
    _require_folder(path)
    manager = _manager(TrustPolicy(allow_unsigned=True))  # authors test before signing
    plugin = manager.load_plugin(path, _source_of(path))
    cases = read_test_cases(path, plugin.name)
    executor, _ = manager.get_executor(plugin.manifest.languages[0].name)

    async def run_all() -> list:  # type: ignore[type-arg]
        return [await run_case(executor, case) for case in cases]

    outcomes = asyncio.run(run_all())
    failed = [o for o in outcomes if not o.passed]
    if as_json:
        print_json(
            {
                "plugin": plugin.name,
                "passed": len(outcomes) - len(failed),
                "failed": len(failed),
                "cases": [
                    {
                        "name": o.case.name,
                        "passed": o.passed,
                        "problems": o.problems,
                        "duration_ms": round(o.duration_ms, 1),
                    }
                    for o in outcomes
                ],
            }
        )
    else:
        for outcome in outcomes:
            status = "PASS" if outcome.passed else "FAIL"
            sys.stdout.write(
                f"{status} {plugin.name}/{outcome.case.name} ({outcome.duration_ms:.0f} ms)\n"
            )
            for problem in outcome.problems:
                sys.stdout.write(f"     {problem}\n")
        sys.stdout.write(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed\n")
    return 1 if failed else 0
