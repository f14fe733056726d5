"""Remembered signature checks, keyed by the content digest of a plugin folder.

Verifying an Ed25519 signature is cheap, but re-checking every plugin at every start adds up;
a folder whose content digest (every file's name and sha256, signature included) was already
verified against a key is not verified again. Trust itself is always re-checked: removing a
key from the trust store takes effect at once.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class VerificationCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: set[str] | None = None
        self._lock = threading.Lock()  # plugins are verified in parallel

    def _entries(self) -> set[str]:
        with self._lock:
            return self._load()

    def _load(self) -> set[str]:
        if self._known is None:
            try:
                data = json.loads(self.path.read_text())
                self._known = {e for e in data.get("verified", []) if isinstance(e, str)}
            except (OSError, ValueError, AttributeError):
                self._known = set()
        return self._known

    def signature_known(self, content_digest: str, key_id: str) -> bool:
        return f"{content_digest}:{key_id}" in self._entries()

    def remember_signature(self, content_digest: str, key_id: str) -> None:
        with self._lock:
            entries = self._load()
            entries.add(f"{content_digest}:{key_id}")
            self._write(entries)

    def _write(self, entries: set[str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_text(json.dumps({"verified": sorted(entries)}))
            temporary.replace(self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time
