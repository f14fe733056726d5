"""Where a program's text sits in its document, in the client's position units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lsprotocol import types
from pygls.workspace import PositionCodec


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a program's text sits in its document, to put diagnostics on the right lines.

    Line 1 of the program is document line ``line_offset``; on that line the program starts
    at code point ``column_offset``. Columns are sent in the client's negotiated position
    encoding (UTF-16 unless it chose otherwise), converted by pygls's position codec over the
    document's lines as they were when the run started.
    """

    lines: Sequence[str]
    codec: PositionCodec
    line_offset: int = 0
    column_offset: int = 0

    def position(self, line: int, column: int) -> types.Position:
        """Document line ``line`` (clamped to the document), code point ``column``."""
        line = min(max(line, 0), max(len(self.lines) - 1, 0))
        text = self.lines[line].rstrip("\r\n") if self.lines else ""
        column = min(max(column, 0), len(text))
        return types.Position(line, self.codec.client_num_units(text[:column]))

    def whole_line(self, line: int) -> types.Range:
        start = self.position(line, 0)
        return types.Range(start, self.position(start.line, 1 << 30))
