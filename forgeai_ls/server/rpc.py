"""ForgeAI's errors as JSON-RPC errors, and the name diagnostics and messages carry."""

from __future__ import annotations

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from forgeai_ls.errors import ForgeAIError, SourceError, UnknownLanguageError, UsageError

SOURCE = "forgeai"
REQUEST_FAILED = -32803


def rpc_error(error: ForgeAIError) -> JsonRpcException:
    """A JSON-RPC error carrying ForgeAI's one-line message and stable code."""
    data = {"forgeaiCode": error.code}
    if isinstance(error, UsageError | UnknownLanguageError | SourceError):
        return JsonRpcInvalidParams(message=error.one_line(), data=data)
    return JsonRpcException(message=error.one_line(), code=REQUEST_FAILED, data=data)
