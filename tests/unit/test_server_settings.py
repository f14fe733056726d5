"""Server settings: defaults, aliases, Lua's empty table, and refusals that keep defaults."""

from __future__ import annotations

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
