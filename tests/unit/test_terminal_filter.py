"""Which bytes of a program's output may reach a terminal."""

from __future__ import annotations

import pytest

from forgeai_ls.cli.terminal_filter import TerminalFilter

ESC = "\x1b"


def _through(*chunks: bytes) -> bytes:
    screen = TerminalFilter()
    return b"".join(screen.feed(chunk) for chunk in chunks) + screen.end()


@pytest.mark.parametrize(
    "kept",
    [
        "plain text, ünïcode, 日本語, emoji 🎉\n",
        "tab\tcarriage\rback\bspace\n",
        f"{ESC}[31mred{ESC}[0m {ESC}[1;38;5;208mbold orange{ESC}[m {ESC}[38:2::255:0:0mrgb\n",
        f"{ESC}[2K{ESC}[1G{ESC}[3A{ESC}[10;20H{ESC}[J{ESC}[5d progress bars and tables\n",
        f"{ESC}[?25lhidden cursor{ESC}[?25h\n",
    ],
    ids=["text", "controls", "colours", "cursor", "cursor-visibility"],
)
def test_text_colours_and_movement_pass(kept: str) -> None:
    assert _through(kept.encode()) == kept.encode()


@pytest.mark.parametrize(
    ("hostile", "left"),
    [
        (f"{ESC}]52;c;cm0gLXJmIH4K\x07after", "after"),  # OSC 52: write the clipboard
        (f"{ESC}]52;c;cm0gLXJmIH4K{ESC}\\after", "after"),  # ... ended by ST
        (f"{ESC}]0;pwned title\x07x{ESC}]2;t{ESC}\\y", "xy"),  # window title
        (f"{ESC}]8;;http://evil/\x07link{ESC}]8;;\x07", "link"),  # hyperlink
        (f"{ESC}P$q\"p{ESC}\\z", "z"),  # DCS request
        (f"{ESC}[21t{ESC}[6n{ESC}[c{ESC}[>c{ESC}[14t", ""),  # report requests
        (f"{ESC}c{ESC}7{ESC}8{ESC}(0{ESC}=ok", "ok"),  # reset, save, charset, keypad
        ("\x07\x0e\x0f\x00\x7fok", "ok"),  # BEL, SO/SI, NUL, DEL
        ("\u009b21t\u009d0;title\u009cok\u0085", "ok"),  # C1 controls
        (f"{ESC}[31;{'9' * 100}mx", "x"),  # an overlong CSI
        (f"{ESC}]52;c;unterminated", ""),  # cut off at the end
    ],
    ids=[
        "osc52", "osc52-st", "titles", "hyperlink", "dcs", "reports", "other-escapes",
        "c0", "c1", "overlong", "unterminated",
    ],
)  # fmt: skip
def test_escape_sequences_that_act_are_dropped(hostile: str, left: str) -> None:
    assert _through(hostile.encode()) == left.encode()


def test_sequences_split_across_writes() -> None:
    """A sequence (or a UTF-8 character) cut between two writes is recognised whole."""
    data = f"a{ESC}]52;c;ZWNobw==\x07b{ESC}[3".encode() + b"1mc\xe6\x97" + b"\xa5"
    for cut in range(1, len(data)):
        assert _through(data[:cut], data[cut:]) == f"ab{ESC}[31mc日".encode(), cut
    assert _through(*(bytes([byte]) for byte in data)) == f"ab{ESC}[31mc日".encode()


def test_invalid_utf8_is_replaced_not_passed() -> None:
    assert _through(b"ok\x9b21t\xff") == "ok\ufffd21t\ufffd".encode()
