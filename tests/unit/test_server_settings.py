"""Server settings: defaults, aliases, Lua's empty table, and refusals that keep defaults."""

from __future__ import annotations

import threading

import pytest

from forgeai_ls.server.settings import ServerSettings, parse_settings


def test_missing_or_empty_settings_are_the_defaults() -> None:
    """None, {} and Neovim's empty Lua table ([]) all mean 'no settings'."""
    for raw in (None, {}, [], {"forgeai": []}, {"forgeai": {}}):
        settings, problem = parse_settings(raw)
        assert (settings, problem) == (ServerSettings(), None), raw


def test_camel_case_settings_are_read() -> None:
    settings, problem = parse_settings(
        {"forgeai": {"limits": {"timeout": 3, "memoryMb": 64}, "replacePreviousRun": False}}
    )
    assert problem is None
    assert (settings.limits.timeout, settings.limits.memory_mb) == (3, 64)
    assert settings.replace_previous_run is False


def test_invalid_settings_name_the_field_and_fall_back() -> None:
    settings, problem = parse_settings({"forgeai": {"limits": {"timeout": "soon"}}})
    assert settings == ServerSettings()
    assert problem is not None and "limits.timeout" in problem


def test_a_newer_payload_wins_over_a_slower_validation_of_an_older_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plugin-loading thread validates the settings it started with; a payload that
    arrives meanwhile (didChangeConfiguration) is what the server uses afterwards."""
    from forgeai_ls.server import settings as settings_module
    from forgeai_ls.server.server import ForgeAIServer

    server = ForgeAIServer()
    server.use_settings({"forgeai": {"limits": {"timeout": 5}}})
    parsing, release = threading.Event(), threading.Event()
    real_parse = settings_module.parse_settings

    def slow_parse(raw: object) -> tuple[ServerSettings, str | None]:
        parsed = real_parse(raw)
        if threading.current_thread() is not threading.main_thread():
            parsing.set()
            assert release.wait(10)
        return parsed

    monkeypatch.setattr(settings_module, "parse_settings", slow_parse)
    seen: list[ServerSettings] = []
    loader = threading.Thread(target=lambda: seen.append(server.settings))
    loader.start()
    assert parsing.wait(10)
    newer_raw = {"forgeai": {"limits": {"timeout": 0.5}}}
    server.use_settings(newer_raw, real_parse(newer_raw)[0])
    release.set()
    loader.join(10)
    assert server.settings.limits.timeout == 0.5
    assert seen[0].limits.timeout == 0.5  # the thread, too, goes on with the newer settings
