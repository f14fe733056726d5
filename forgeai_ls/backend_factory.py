"""The backends as the CLI and the language server configure them: the native one with warm
pools when asked for and the compile cache under FORGEAI_HOME/cache/compile; the docker one
only when its extra is installed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgeai_ls.extras import require_extra
from forgeai_ls.home import forgeai_home
from forgeai_ls.sandbox import NativeBackend
from forgeai_ls.sandbox.compile_cache import CompileCache
from forgeai_ls.sandbox.warm_pool import PoolSettings

if TYPE_CHECKING:
    from forgeai_ls.sandbox.docker_backend import DockerBackend


def native_backend(
    pools: PoolSettings | None = None, *, compile_cache: bool = True
) -> NativeBackend:
    cache = CompileCache(forgeai_home() / "cache" / "compile") if compile_cache else None
    return NativeBackend(pools=pools, compile_cache=cache)


def docker_backend(base_url: str | None = None, *, pool_size: int = 0) -> DockerBackend:
    """The docker backend (FORGEAI-E105 when the 'docker' extra is not installed)."""
    require_extra("docker")
    from forgeai_ls.sandbox.docker_backend import DockerBackend

    return DockerBackend(base_url, pool_size=pool_size)
