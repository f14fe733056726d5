"""workspace/executeCommand: forgeai.listLanguages and forgeai.reloadPlugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forgeai_ls.server.server import ForgeAIServer

if TYPE_CHECKING:
    from forgeai_ls.plugins.manager import BlockedPlugin


def _languages(ls: ForgeAIServer) -> list[dict[str, Any]]:
    return [
        {
            "name": e.spec.name,
            "displayName": e.spec.display_name,
            "aliases": list(e.spec.aliases),
            "extensions": list(e.spec.extensions),
            "plugin": e.plugin,
            "compiled": e.spec.compile is not None,
        }
        for e in ls.manager.catalog().entries()
    ]


def _payload(ls: ForgeAIServer, blocked: list[BlockedPlugin]) -> dict[str, Any]:
    return {
        "languages": _languages(ls),
        "unavailable": [
            {"plugin": b.error.plugin, "code": b.error.code, "reason": b.error.message}
            for b in blocked
        ],
    }


def register(server: ForgeAIServer) -> None:
    @server.command("forgeai.listLanguages")
    def list_languages(ls: ForgeAIServer) -> dict[str, Any]:
        """Every language the loaded plugins run, and the plugins that were refused."""
        return _payload(ls, ls.manager.blocked())

    @server.command("forgeai.reloadPlugins")
    def reload_plugins(ls: ForgeAIServer) -> dict[str, Any]:
        """Discover and verify plugins again (after installing or editing one)."""
        blocked = ls.reload_plugins()
        ls.report_blocked(blocked)
        return _payload(ls, blocked)
