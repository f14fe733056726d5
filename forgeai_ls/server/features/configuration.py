"""workspace/didChangeConfiguration (section 'forgeai'): new settings take effect at once."""

from __future__ import annotations

from lsprotocol import types

from forgeai_ls.server.server import ForgeAIServer


def register(server: ForgeAIServer) -> None:
    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: ForgeAIServer, params: types.DidChangeConfigurationParams
    ) -> None:
        """Apply new settings; invalid ones are shown and the defaults used."""
        from forgeai_ls.server.settings import parse_settings  # pydantic: not at start-up

        settings, problem = parse_settings(params.settings)
        if problem:
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning, message=f"ForgeAI: {problem}"
                )
            )
        plugins_changed = settings.loading_key() != ls.settings.loading_key()
        ls.use_settings(params.settings, settings)
        if plugins_changed:
            ls.report_blocked(ls.reload_plugins())
