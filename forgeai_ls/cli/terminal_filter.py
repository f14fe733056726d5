"""What of a sandboxed program's output may reach the user's terminal.

A program's bytes written raw to a terminal can do more than print: OSC 52 writes the
clipboard (a command planted for the user to paste), OSC 0/2 set the window title, DCS and
some CSI sequences make the terminal answer (`CSI 21 t` reports the title back as if typed).
When ``forgeai run`` writes to a terminal it passes text, colours and cursor movement and drops
everything else; ``--raw-output`` keeps everything.

Passed: printable text (UTF-8), TAB, LF, CR, BS; CSI sequences ending in SGR ``m`` (colours,
styles), cursor movement and positioning (``A``-``H``, ``f``, ``d``), erasing (``J``, ``K``),
and showing or hiding the cursor (``?25h``/``?25l``). Dropped: every other escape sequence
(OSC, DCS, APC, PM, SOS and their payloads, other CSI, ``ESC c`` reset, charset switches),
the other control characters (BEL, SO/SI, ...) and C1 controls (U+0080-U+009F, which some
terminals take as escape sequences). Sequences split across writes are handled; invalid UTF-8
becomes U+FFFD.
"""

from __future__ import annotations

import codecs

_KEPT_CONTROLS = frozenset("\t\n\r\b")
_CSI_FINALS = frozenset("ABCDEFGHJKfmd")
_PRIVATE_KEPT = frozenset({"?25h", "?25l"})
_MAX_SEQUENCE = 64
"""A CSI longer than this is no colour or movement: dropped."""

_TEXT, _ESCAPE, _CSI, _CSI_SKIP, _STRING, _STRING_ESCAPE, _ONE_MORE = range(7)


class TerminalFilter:
    """Filters one output stream; ``feed`` chunks as they come, ``end`` at the end."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._state = _TEXT
        self._sequence: list[str] = []

    def feed(self, data: bytes) -> bytes:
        return self._filter(self._decoder.decode(data)).encode()

    def end(self) -> bytes:
        """What is left: an unfinished escape sequence is dropped."""
        text = self._filter(self._decoder.decode(b"", final=True))
        self._state, self._sequence = _TEXT, []
        return text.encode()

    def _filter(self, text: str) -> str:
        out: list[str] = []
        for char in text:
            state = self._state
            if state == _TEXT:
                if char == "\x1b":
                    self._state = _ESCAPE
                elif char == "\x9b":  # a C1 CSI: dropped with what follows, like ESC [
                    self._start_csi()
                elif char in ("\x90", "\x9d", "\x9e", "\x9f", "\x98"):  # C1 DCS/OSC/PM/APC/SOS
                    self._state = _STRING
                elif (
                    char >= " " and char != "\x7f" and not "\x80" <= char <= "\x9f"
                ) or char in _KEPT_CONTROLS:
                    out.append(char)
            elif state == _ESCAPE:
                if char == "[":
                    self._start_csi()
                elif char in "]PX^_":  # OSC, DCS, SOS, PM, APC: a string until ST (or BEL)
                    self._state = _STRING
                elif char in "()*+-./#%":  # charset designation etc.: one more character
                    self._state = _ONE_MORE
                else:
                    self._state = _TEXT  # ESC c, ESC 7, ESC =, ...: dropped
            elif state == _CSI:
                self._sequence.append(char)
                if "\x40" <= char <= "\x7e":
                    body = "".join(self._sequence)
                    if self._kept_csi(body):
                        out.append("\x1b[" + body)
                    self._state, self._sequence = _TEXT, []
                elif not "\x20" <= char <= "\x3f":
                    self._state, self._sequence = _TEXT, []  # malformed: dropped
                elif len(self._sequence) > _MAX_SEQUENCE:
                    self._state, self._sequence = _CSI_SKIP, []  # dropped, up to its end
            elif state == _CSI_SKIP:
                if not "\x20" <= char <= "\x3f":
                    self._state = _TEXT
            elif state == _STRING:
                if char in ("\x07", "\x9c"):
                    self._state = _TEXT
                elif char == "\x1b":
                    self._state = _STRING_ESCAPE
            elif state == _STRING_ESCAPE:
                self._state = _TEXT if char == "\\" else _STRING
            else:  # _ONE_MORE
                self._state = _TEXT
        return "".join(out)

    def _start_csi(self) -> None:
        self._state, self._sequence = _CSI, []

    @staticmethod
    def _kept_csi(body: str) -> bool:
        final, params = body[-1], body[:-1]
        if params.startswith("?"):
            return body in _PRIVATE_KEPT
        if final not in _CSI_FINALS:
            return False
        return all(char.isdigit() or char in ";:" for char in params)
