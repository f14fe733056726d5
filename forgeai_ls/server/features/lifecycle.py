"""initialize / initialized / shutdown: settings from initializationOptions, plugins loaded
once, warm sandboxes and pooled containers removed at the end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from forgeai_ls.server.server import ForgeAIServer

if TYPE_CHECKING:
    from forgeai_ls.plugins.manager import BlockedPlugin


def _can_refresh_lenses(ls: ForgeAIServer) -> bool:
    workspace = ls.client_capabilities.workspace
    code_lens = workspace.code_lens if workspace is not None else None
    return bool(code_lens is not None and code_lens.refresh_support)


def register(server: ForgeAIServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: ForgeAIServer, params: types.InitializeParams) -> None:
        """LSP initialize: read the 'forgeai' settings from initializationOptions."""
        ls.use_settings(params.initialization_options)  # validated with the plugins

    @server.feature(types.INITIALIZED)
    def initialized(ls: ForgeAIServer, params: types.InitializedParams) -> None:
        """LSP initialized: report invalid settings; verify the plugins in the background,
        then report refused ones, warm the open documents' sandboxes and, if the lenses
        served meanwhile from the start-up cache differ, ask the client to refresh them."""

        def loaded(blocked: list[BlockedPlugin]) -> None:
            if ls.pending_problem:
                ls.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Warning, message=f"ForgeAI: {ls.pending_problem}"
                    )
                )
                ls.pending_problem = None
            ls.report_blocked(blocked)
            ls.prewarm_pending()
            if ls.lens_catalog_changed() and _can_refresh_lenses(ls):
                ls.workspace_code_lens_refresh(None)

        ls.load_plugins_in_background(loaded)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: ForgeAIServer, params: None) -> None:
        """LSP shutdown: stop every run (each is reported, and its request answered, as
        cancelled), then the warm sandboxes and pre-started containers."""
        await ls.stop_runs()
        ls.close_backend()
