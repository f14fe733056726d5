"""The native backend as the CLI and the language server configure it: warm pools when asked
for, and the compile cache under FORGEAI_HOME/cache/compile."""

from __future__ import annotations

from forgeai_ls.home import forgeai_home
from forgeai_ls.sandbox import NativeBackend
from forgeai_ls.sandbox.compile_cache import CompileCache
from forgeai_ls.sandbox.warm_pool import PoolSettings


def native_backend(
    pools: PoolSettings | None = None, *, compile_cache: bool = True
) -> NativeBackend:
    cache = CompileCache(forgeai_home() / "cache" / "compile") if compile_cache else None
    return NativeBackend(pools=pools, compile_cache=cache)
