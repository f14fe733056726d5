"""Files out: what a program leaves in its output directory comes back as artifacts.

Every run step's sandbox has ``OUTPUT_DIR`` (``/work/out``, also ``$FORGEAI_OUTPUT_DIR``),
empty, on the sandbox's size-capped work filesystem. Once the sandbox has ended — no process
of it left to race with — the supervisor joins its namespaces (held open for this) and reads
that directory (``supervisor._collect``): regular files come back, up to ``MAX_FILES`` files
and ``MAX_BYTES`` in all; links, FIFOs, devices and sockets are listed and never followed or
opened; what is over the cap is listed and not copied. The frames it writes are checked again
here (the names above all): nothing from the sandbox is trusted.
"""

from __future__ import annotations

import json
import mimetypes
import struct
from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

OUTPUT_DIR = "/work/out"
MAX_FILES = 1000
MAX_BYTES = 50 * 1024 * 1024
_MAX_NAME = 1024
_HEADER_BYTES = 4096


class Artifact(BaseModel):
    """One file the program wrote to its output directory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """Relative to the output directory, with ``/`` between folders."""
    size: int
    mime: str
    data: bytes = Field(default=b"", exclude=True, repr=False)


class Artifacts(BaseModel):
    """What came back, and what did not (each with the reason)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: tuple[Artifact, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.files and not self.skipped


def safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        0 < len(name) <= _MAX_NAME
        and "\x00" not in name
        and "\\" not in name
        and not path.is_absolute()
        and all(part not in ("", ".", "..") for part in name.split("/"))
    )


def parse_collected(
    data: bytes, *, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES
) -> Artifacts:
    """The collector's frames as artifacts (a frame cut short, at the end, is dropped)."""
    files: list[Artifact] = []
    skipped: list[str] = []
    total = 0
    offset = 0
    reasons = {
        "link": "a symbolic link, not followed",
        "special": "not a regular file (FIFO, device or socket)",
        "unreadable": "could not be read",
        "over": f"over the cap ({max_files} files, {max_bytes // (1024 * 1024)} MiB in all)",
    }
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        if length > _HEADER_BYTES or offset + 4 + length > len(data):
            break
        try:
            header = json.loads(data[offset + 4 : offset + 4 + length])
            name, kind, size = str(header["name"]), str(header["kind"]), int(header["size"])
        except (ValueError, KeyError, TypeError):
            break
        offset += 4 + length
        if kind == "file":
            if size < 0 or offset + size > len(data):
                break
            content = data[offset : offset + size]
            offset += size
            if not safe_name(name):
                skipped.append(f"{name!r}: not a safe relative name")
            elif len(files) >= max_files or total + size > max_bytes:
                skipped.append(f"{name}: {reasons['over']}")
            else:
                mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
                files.append(Artifact(name=name, size=size, mime=mime, data=content))
                total += size
        else:
            shown = name if safe_name(name) else repr(name)
            skipped.append(f"{shown}: {reasons.get(kind, 'skipped')}")
    return Artifacts(files=tuple(files), skipped=tuple(skipped))
