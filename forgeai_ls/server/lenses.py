"""Where "Run in sandbox" lenses go: pure functions over document text (no LSP types)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True, slots=True)
class Span:
    """Lines ``start`` (inclusive) to ``end`` (exclusive), 0-based; ``end_character`` is the
    length of the last line, so the span covers whole lines."""

    start: int
    end: int
    end_character: int


@dataclass(frozen=True, slots=True)
class FencedBlock:
    language: str
    code: Span
    """The block's code lines (between the fences)."""
    fence_line: int


def markdown_blocks(text: str) -> list[FencedBlock]:
    """Fenced code blocks (``` or ~~~, CommonMark rules) with their info-string language."""
    blocks: list[FencedBlock] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        fence = opening["fence"]
        info = opening["info"].strip().split()
        language = info[0].strip("{}.").lower() if info else ""
        close = index + 1
        while close < len(lines):
            stripped = lines[close].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            close += 1
        if close > index + 1 and language:
            last = close - 1
            blocks.append(FencedBlock(language, Span(index + 1, close, len(lines[last])), index))
        index = close + 1
    return blocks


def cells(text: str, marker: str) -> list[Span]:
    """Notebook-style cells: each line starting with ``marker`` opens one, up to the next."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith(marker)]
    spans = []
    for position, start in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else len(lines)
        while end - 1 > start and not lines[end - 1].strip():
            end -= 1  # trailing blank lines are not part of the cell
        if end - 1 > start:
            spans.append(Span(start + 1, end, len(lines[end - 1])))
    return spans
