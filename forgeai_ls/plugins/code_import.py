"""Importing a code plugin from the exact bytes that were verified, never from disk again.

Each plugin gets its own package name (``forgeai_plugin_<digest>``); its ``.py`` files become
modules of that package, served from memory by a meta-path finder. Nothing is written (no
``__pycache__``) and a file changed on disk after verification is never executed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType


class _VerifiedSourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, package: str, sources: Mapping[str, bytes], origin: str) -> None:
        self.package = package
        self.origin = origin
        self.modules: dict[str, tuple[bytes, bool, str]] = {package: (b"", True, "")}
        for relative, data in sources.items():
            if not relative.endswith(".py"):
                continue
            parts = relative[:-3].split("/")
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            name = ".".join([package, *parts])
            self.modules[name] = (data, is_package, relative)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        _, is_package, relative = self.modules[fullname]
        spec = importlib.util.spec_from_loader(fullname, self, is_package=is_package)
        if spec is not None:
            spec.origin = f"{self.origin}/{relative}" if relative else self.origin
            spec.has_location = bool(relative)
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        source, _, relative = self.modules[module.__name__]
        if relative:
            code = compile(source, f"{self.origin}/{relative}", "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102 (verified plugin code, by design)


def import_verified(
    package: str, sources: Mapping[str, bytes], origin: str, module: str
) -> ModuleType:
    """Import ``package.module`` from ``sources`` (relative path -> verified bytes)."""
    finder = _VerifiedSourceFinder(package, sources, origin)
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module(f"{package}.{module}")
    finally:
        sys.meta_path.remove(finder)


def forget(package: str) -> None:
    """Drop a plugin's modules (unloading)."""
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        del sys.modules[name]
