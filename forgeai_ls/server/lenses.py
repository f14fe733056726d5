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


_FENCE_LINE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})[^\n]*$", re.MULTILINE)


def _fence_lines(text: str) -> list[tuple[int, str, int]]:
    """(line number, line, offset) of every line that could open or close a fence: a regex
    scan instead of a loop over all lines (a 10,000-line file has few such lines)."""
    found = []
    line, position = 0, 0
    for match in _FENCE_LINE.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        found.append((line, match.group(0), match.start()))
    return found


def _length_of_line_ending_at(text: str, end: int) -> int:
    """Length of the line whose text ends at offset ``end`` (exclusive)."""
    return end - (text.rfind("\n", 0, end) + 1)


def markdown_blocks(text: str) -> list[FencedBlock]:
    """Fenced code blocks (``` or ~~~, CommonMark rules) with their info-string language."""
    blocks: list[FencedBlock] = []
    fences = _fence_lines(text)
    index = 0
    while index < len(fences):
        line, raw, _ = fences[index]
        opening = _FENCE.match(raw)
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        fence = opening["fence"]
        info = opening["info"].strip().split()
        language = info[0].strip("{}.").lower() if info else ""
        close = index + 1
        while close < len(fences):
            stripped = fences[close][1].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            close += 1
        if close == len(fences):  # unclosed: the block runs to the end of the document
            body = text.rstrip("\n")
            end_line, end_offset = body.count("\n") + 1, len(body)
        else:
            end_line, end_offset = fences[close][0], fences[close][2] - 1
        if end_line > line + 1 and language:
            width = _length_of_line_ending_at(text, end_offset)
            blocks.append(FencedBlock(language, Span(line + 1, end_line, width), line))
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
