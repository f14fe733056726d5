"""Every loader stage refuses what it must, with its own code, and registers nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from forgeai_ls.errors import (
    ConstructorFailedError,
    ConstructorMissingError,
    ConstructorSignatureError,
    IncompatibleVersionError,
    IntegrityError,
    ManifestError,
    MissingDependencyError,
    PluginError,
    SecurityProfileError,
    TrustLevelError,
    UnsignedPluginError,
    UntrustedSignerError,
)
from forgeai_ls.plugins.loader import PluginSource
from forgeai_ls.plugins.trust import TrustLevel, TrustPolicy
from tests.plugins.conftest import PluginFactory

GOOD_CODE = """\
def create_executor(config):
    return config.declarative("codelang")
"""


def refused(
    plugins: PluginFactory, path: Path, error: type[PluginError], policy: TrustPolicy | None = None
) -> PluginError:
    manager = plugins.manager(policy=policy)
    with pytest.raises(error) as caught:
        manager.load_plugin(path)
    assert manager.plugins() == []
    assert caught.value.plugin in caught.value.one_line()
    return caught.value


def test_a_signed_trusted_plugin_loads_and_runs(plugins: PluginFactory) -> None:
    """The baseline all refusals differ from: signed by a trusted key, it loads and runs."""
    path = plugins.folder("demo")
    plugins.key("alice")
    plugins.sign(path, "alice")
    manager = plugins.manager()
    plugin = manager.load_plugin(path)
    assert plugin.trust_label == "community"
    assert manager.supported_languages() == ["demo"]


def test_malformed_yaml(plugins: PluginFactory) -> None:
    """YAML that does not parse is refused at the manifest stage, naming the file."""
    path = plugins.folder("demo")
    (path / "plugin.yaml").write_text("name: demo\nlanguages: [\n")
    error = refused(plugins, path, ManifestError)
    assert "plugin.yaml is not valid YAML" in error.message


def test_yaml_alias_bomb(plugins: PluginFactory) -> None:
    """Anchors and aliases (billion laughs) are refused before any expansion."""
    path = plugins.folder("demo")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    (path / "plugin.yaml").write_text(bomb)
    error = refused(plugins, path, ManifestError)
    assert "aliases" in error.message


def test_wrong_types(plugins: PluginFactory) -> None:
    """A field of the wrong type names the field and the expectation."""
    path = plugins.folder("demo")
    text = (path / "plugin.yaml").read_text().replace("dependencies: [python3]", "dependencies: 42")
    (path / "plugin.yaml").write_text(text)
    error = refused(plugins, path, ManifestError)
    assert "field 'dependencies'" in error.message


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("    source_file: ../escape.py", "plain file name"),
        ("    source_file: /tmp/x.py", "plain file name"),
        ("    source_file: sub/x.py", "plain file name"),
        ("    source_file: main.py\n    main_name_pattern: 'class (.*)'", "outside the work dir"),
        ("    source_file: main.py\n    main_name_pattern: 'class \\w+'", "needs a group"),
    ],
    ids=["dotdot", "absolute", "subdir", "greedy-pattern", "no-group"],
)
def test_names_that_could_leave_the_work_dir(
    plugins: PluginFactory, line: str, fragment: str
) -> None:
    """A source file name, or a pattern that names the file from the code, that could point
    outside the work dir is refused when the manifest is read (E201), not at run time."""
    path = plugins.folder("demo")
    text = (path / "plugin.yaml").read_text().replace("    source_file: main.py", line)
    (path / "plugin.yaml").write_text(text)
    error = refused(plugins, path, ManifestError)
    assert error.code == "FORGEAI-E201"
    assert fragment in error.message


def test_a_name_taken_from_the_code_is_never_a_path() -> None:
    """Even a pattern that slipped past validation (built here without it) yields the
    default name for a capture that is not a plain name."""
    from forgeai_ls.plugins.language import LanguageSpec

    spec = LanguageSpec.model_construct(
        name="java", display_name="Java", extensions=(".java",), source_file="Main.java",
        main_name_pattern=r"^public class (\S+) ", run=("java", "{source}"),
    )  # fmt: skip
    assert spec.source_name_for("public class Hello {", None) == "Hello.java"
    assert spec.source_name_for("public class Ünï {", None) == "Ünï.java"
    assert spec.source_name_for("public class ../../etc/x {", None) == "Main.java"


def test_required_field_missing(plugins: PluginFactory) -> None:
    """A missing required field is named."""
    path = plugins.folder("demo")
    text = (path / "plugin.yaml").read_text().replace("license: MIT\n", "")
    (path / "plugin.yaml").write_text(text)
    error = refused(plugins, path, ManifestError)
    assert "field 'license'" in error.message and "required" in error.message.lower()


def test_version_outside_min_max(plugins: PluginFactory) -> None:
    """A plugin made for other ForgeAI versions is refused with both ranges named."""
    path = plugins.folder("demo")
    text = (
        (path / "plugin.yaml")
        .read_text()
        .replace("minimum_forgeai_version: 0.1.0", "minimum_forgeai_version: 2.0.0")
        .replace("maximum_forgeai_version: 0.99.0", "maximum_forgeai_version: 2.9.0")
    )
    (path / "plugin.yaml").write_text(text)
    plugins.key("alice")
    plugins.sign(path, "alice")
    error = refused(plugins, path, IncompatibleVersionError)
    assert "2.0.0 to 2.9.0" in error.message


def test_missing_dependency(plugins: PluginFactory) -> None:
    """A required tool absent from PATH is named."""
    path = plugins.folder("demo")
    text = (path / "plugin.yaml").read_text().replace("[python3]", "[python3, no-such-tool-x]")
    (path / "plugin.yaml").write_text(text)
    plugins.key("alice")
    plugins.sign(path, "alice")
    error = refused(plugins, path, MissingDependencyError)
    assert "'no-such-tool-x'" in error.message


def test_bad_seccomp_profile(plugins: PluginFactory) -> None:
    """A seccomp.json that is not a syscall profile is refused."""
    path = plugins.folder("demo")
    (path / "seccomp.json").write_text(json.dumps({"defaultAction": "ALLOW_EVERYTHING"}))
    plugins.key("alice")
    plugins.sign(path, "alice")
    error = refused(plugins, path, SecurityProfileError)
    assert "defaultAction" in error.message


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (
            lambda p: (p / "plugin.yaml").write_text(
                (p / "plugin.yaml").read_text().replace("A test executor", "A harmless executor")
            ),
            "changed since signing: plugin.yaml",
        ),
        (
            lambda p: (p / "main.py").write_text(GOOD_CODE + "import os\n"),
            "changed since signing: main.py",
        ),
        (lambda p: (p / "extra.py").write_text("x = 1\n"), "added since signing: extra.py"),
        (lambda p: (p / "README.md").unlink(), "removed since signing: README.md"),
    ],
    ids=["tampered-manifest", "tampered-main-py", "added-file", "removed-file"],
)
def test_tampering_after_signing(
    plugins: PluginFactory, change: Callable[[Path], object], what: str
) -> None:
    """Any changed, added or removed byte fails verification, naming the file."""
    path = plugins.folder(
        "demo", extra="entry_point: main:create_executor\n", language="codelang", code=GOOD_CODE
    )
    plugins.key("alice")
    plugins.sign(path, "alice")
    change(path)
    error = refused(plugins, path, IntegrityError)
    assert what in error.message


def test_forged_signature_file(plugins: PluginFactory) -> None:
    """Editing the digests inside SIGNATURE.json breaks the signature itself."""
    path = plugins.folder("demo")
    plugins.key("alice")
    plugins.sign(path, "alice")
    document = json.loads((path / "SIGNATURE.json").read_text())
    document["files"]["README.md"] = "sha256:" + "0" * 64
    (path / "SIGNATURE.json").write_text(json.dumps(document))
    error = refused(plugins, path, IntegrityError)
    assert "does not verify" in error.message


def test_signature_by_an_untrusted_key(plugins: PluginFactory) -> None:
    """A valid signature by a key not in the trust store is refused, naming the key."""
    path = plugins.folder("demo")
    key_id = plugins.key("mallory", level=None)
    plugins.sign(path, "mallory")
    error = refused(plugins, path, UntrustedSignerError)
    assert key_id in error.message


def test_key_below_the_policy_level(plugins: PluginFactory) -> None:
    """A community key does not satisfy a policy that requires verified publishers."""
    path = plugins.folder("demo")
    plugins.key("alice", level=TrustLevel.COMMUNITY)
    plugins.sign(path, "alice")
    error = refused(
        plugins, path, TrustLevelError, policy=TrustPolicy(minimum_level=TrustLevel.VERIFIED)
    )
    assert "requires at least verified" in error.message


def test_unsigned_without_the_development_flag(plugins: PluginFactory) -> None:
    """An unsigned folder loads only when unsigned plugins are explicitly allowed."""
    path = plugins.folder("demo")
    refused(plugins, path, UnsignedPluginError)
    manager = plugins.manager(policy=TrustPolicy(allow_unsigned=True))
    assert manager.load_plugin(path).trust_label == "unsigned"


def _code_plugin(plugins: PluginFactory, code: str) -> Path:
    path = plugins.folder(
        "demo", extra="entry_point: main:create_executor\n", language="codelang", code=code
    )
    plugins.key("alice")
    plugins.sign(path, "alice")
    return path


@pytest.mark.parametrize(
    ("code", "error", "fragment"),
    [
        (
            "def make_executor(config):\n    return None\n",
            ConstructorMissingError,
            "'create_executor' in main, which is missing",
        ),
        (
            "def create_executor():\n    return None\n",
            ConstructorSignatureError,
            "cannot be called with one config argument",
        ),
        (
            "def create_executor(config):\n    raise RuntimeError('no toolchain')\n",
            ConstructorFailedError,
            "constructor raised RuntimeError: no toolchain",
        ),
        (
            "def create_executor(config):\n    return 42\n",
            ConstructorSignatureError,
            "lacks execute, execute_file, supported_languages",
        ),
    ],
    ids=["no-constructor", "wrong-signature", "constructor-raises", "not-an-executor"],
)
def test_code_plugin_initialisation(
    plugins: PluginFactory, code: str, error: type[PluginError], fragment: str
) -> None:
    """Constructor problems are refused at first use, each with its own code; nothing stays."""
    path = _code_plugin(plugins, code)
    manager = plugins.manager()
    manager.load_plugin(path)  # verification passes; code loads lazily
    with pytest.raises(error) as caught:
        manager.get_executor("codelang")
    assert fragment in caught.value.message
    assert manager.plugins() == []
    assert [b.error for b in manager.blocked()] == [caught.value]


async def test_code_plugin_runs_through_its_constructor(plugins: PluginFactory) -> None:
    """A code plugin's executor (built on the declarative one) runs code in the sandbox."""
    path = _code_plugin(plugins, GOOD_CODE)
    manager = plugins.manager()
    manager.load_plugin(path)
    executor, language = manager.get_executor("codelang")
    result = await executor.execute(language, "print('from a code plugin')")
    assert result.stdout == b"from a code plugin\n"


def test_one_broken_plugin_of_ten(plugins: PluginFactory) -> None:
    """In a directory of ten, the broken one is reported by name; nine load."""
    plugins.key("alice")
    for index in range(10):
        path = plugins.folder(f"lang{index}")
        plugins.sign(path, "alice")
    (plugins.root / "lang7" / "README.md").write_text("changed after signing\n")
    manager = plugins.manager()
    blocked = manager.load_plugins_from_dir(plugins.root, PluginSource.INSTALLED)
    assert [b.error.plugin for b in blocked] == ["lang7"]
    assert isinstance(blocked[0].error, IntegrityError)
    assert sorted(p.name for p in manager.plugins()) == [f"lang{i}" for i in range(10) if i != 7]


def test_a_modified_bundled_file_is_refused(
    plugins: PluginFactory, copy_official: Callable[[str], Path]
) -> None:
    """Official plugins verify against the shipped lock; an edited copy is refused."""
    folder = copy_official("python")
    manager = plugins.manager()
    assert manager.load_plugin(folder, PluginSource.BUNDLED).trust_label == "official"
    (folder / "plugin.yaml").write_text((folder / "plugin.yaml").read_text() + "\n")
    with pytest.raises(IntegrityError, match="bundled files changed since ForgeAI shipped"):
        plugins.manager().load_plugin(folder, PluginSource.BUNDLED)


async def test_plugin_seccomp_profile_is_applied_natively(plugins: PluginFactory) -> None:
    """A plugin's seccomp.json denying mkdir makes mkdir fail in its sandbox, not in others."""
    path = plugins.folder("demo")
    (path / "seccomp.json").write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
                ],
            }
        )
    )
    plugins.key("alice")
    plugins.sign(path, "alice")
    manager = plugins.manager()
    manager.load_plugin(path)
    executor, language = manager.get_executor("demo")
    code = (
        "import os\ntry:\n    os.mkdir('made')\n    print('created')\n"
        "except OSError as exc:\n    print('refused', exc.errno)"
    )
    result = await executor.execute(language, code)
    assert result.stdout == b"refused 13\n"
    assert (await executor.language(language).execute(language, code)).stdout == b"refused 13\n"
