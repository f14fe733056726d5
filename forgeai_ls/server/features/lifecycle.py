"""initialize / initialized / shutdown: settings from initializationOptions, plugins loaded
once, pooled containers removed at the end."""

from __future__ import annotations

from lsprotocol import types

from forgeai_ls.server.server import ForgeAIServer
from forgeai_ls.server.settings import parse_settings


def register(server: ForgeAIServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: ForgeAIServer, params: types.InitializeParams) -> None:
        """LSP initialize: read the 'forgeai' settings from initializationOptions."""
        ls.settings, problem = parse_settings(params.initialization_options)
        ls.pending_problem = problem

    @server.feature(types.INITIALIZED)
    def initialized(ls: ForgeAIServer, params: types.InitializedParams) -> None:
        """LSP initialized: load plugins, report invalid settings and refused plugins."""
        if ls.pending_problem:
            ls.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning, message=f"ForgeAI: {ls.pending_problem}"
                )
            )
            ls.pending_problem = None
        ls.report_blocked(ls.reload_plugins())

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: ForgeAIServer, params: None) -> None:
        """LSP shutdown: remove the docker backend's pre-started containers."""
        ls.close_backend()
