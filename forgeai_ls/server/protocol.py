"""The JSON-RPC protocol, with request cancellation reaching command handlers.

pygls 2.1 runs workspace/executeCommand as a generator that calls the command's coroutine
under a fresh internal id; ``$/cancelRequest`` then cancels only the outer future and the
command (a running program) would go on. Here, when that outer future is cancelled, the
command's task is cancelled too, so cancelling the request stops the run.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Future
from typing import Any

from pygls.protocol import LanguageServerProtocol


class ForgeAIProtocol(LanguageServerProtocol):
    def _execute_handler(
        self, msg_id: Any, handler: Any, callback: Any, args: Any = None, kwargs: Any = None
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args=args, kwargs=kwargs)
        outer = (
            callback.keywords.get("result_future")
            if isinstance(callback, functools.partial)
            else None
        )
        inner = self._request_futures.get(msg_id)
        if isinstance(outer, Future | asyncio.Future) and isinstance(inner, asyncio.Task):
            outer.add_done_callback(lambda done: inner.cancel() if done.cancelled() else None)
