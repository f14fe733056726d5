"""Optional parts of ForgeAI (pip extras), and the one clear error when one is missing.

The core install is what an editor user needs. ``forgeai-ls[registry]`` adds the registry's
HTTP server, ``forgeai-ls[docker]`` the Docker Engine API client. A command that needs an
extra checks for it before importing anything from it.
"""

from __future__ import annotations

from importlib.util import find_spec

from forgeai_ls.errors import MissingExtraError

_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "registry": ("the registry server ('forgeai registry serve')", ("fastapi", "uvicorn")),
    "docker": ("the docker backend and 'forgeai image'", ("docker", "requests")),
}


def require_extra(name: str) -> None:
    """Raise MissingExtraError (FORGEAI-E105) unless the extra's modules are importable."""
    purpose, modules = _EXTRAS[name]
    missing = [module for module in modules if find_spec(module) is None]
    if missing:
        raise MissingExtraError(
            f"{purpose} needs ForgeAI's '{name}' extra, which is not installed "
            f"(no module {', '.join(repr(m) for m in missing)})",
            hint=f"install it beside ForgeAI: pip install 'forgeai-ls[{name}]' "
            f"(uv tool install / pipx install 'forgeai-ls[{name}]')",
        )
