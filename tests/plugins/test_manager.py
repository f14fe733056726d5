"""PluginManager: precedence between plugins claiming one language, lookup, unloading."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from forgeai_ls.errors import MissingDependencyError, PluginNotFoundError, UnknownLanguageError
from forgeai_ls.plugins.loader import PluginSource
from tests.plugins.conftest import PluginFactory


def test_installed_plugin_overrides_the_bundled_claim(
    plugins: PluginFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Two plugins claim 'shared': the later source wins and a warning names both."""
    plugins.key("alice")
    bundled_like = plugins.folder("alpha", language="shared")
    installed = plugins.folder("beta", language="shared")
    for path in (bundled_like, installed):
        plugins.sign(path, "alice")
    manager = plugins.manager()
    manager.load_plugin(bundled_like, PluginSource.INSTALLED)
    manager.load_plugin(installed, PluginSource.EXTRA)
    with caplog.at_level(logging.WARNING):
        executor, language = manager.get_executor("shared")
    assert (executor.name, language) == ("beta", "shared")
    assert "claimed by plugins 'beta' and 'alpha'; 'beta' is used" in caplog.text


def test_same_source_conflict_is_decided_by_name(plugins: PluginFactory) -> None:
    """Within one source, the plugin whose name sorts first wins, whatever the load order."""
    plugins.key("alice")
    for name in ("zeta", "gamma"):
        plugins.sign(plugins.folder(name, language="shared"), "alice")
    manager = plugins.manager()
    manager.load_plugins_from_dir(plugins.root, PluginSource.INSTALLED)
    assert manager.get_executor("shared")[0].name == "gamma"
    assert manager.executor_for_file(Path("x.shared"))[0].name == "gamma"


def test_unload_removes_the_languages(plugins: PluginFactory) -> None:
    """After unloading, the plugin's languages are unknown again."""
    plugins.key("alice")
    path = plugins.folder("demo")
    plugins.sign(path, "alice")
    manager = plugins.manager()
    manager.load_plugin(path)
    assert manager.supported_languages() == ["demo"]
    manager.unload("demo")
    assert manager.supported_languages() == []
    with pytest.raises(UnknownLanguageError):
        manager.get_executor("demo")
    with pytest.raises(PluginNotFoundError):
        manager.unload("demo")


def test_a_language_of_a_refused_plugin_reports_the_refusal(plugins: PluginFactory) -> None:
    """Asking for a language only a blocked plugin provides gives that plugin's reason."""
    plugins.key("alice")
    path = plugins.folder("demo")
    text = (path / "plugin.yaml").read_text().replace("[python3]", "[python3, not-installed-x]")
    (path / "plugin.yaml").write_text(text)
    plugins.sign(path, "alice")
    manager = plugins.manager()
    manager.load_plugins_from_dir(plugins.root)
    with pytest.raises(MissingDependencyError, match="not-installed-x"):
        manager.get_executor("demo")
    with pytest.raises(MissingDependencyError):
        manager.executor_for_file(Path("prog.demo"))
