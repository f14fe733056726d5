"""A terminal program's screen as a PNG: tmux captures it with colours, Chromium renders it."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_BASIC = ["#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5"]
_BRIGHT = ["#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"]


def _xterm256(index: int) -> str:
    if index < 8:
        return _BASIC[index]
    if index < 16:
        return _BRIGHT[index - 8]
    if index < 232:
        index -= 16
        levels = [0, 95, 135, 175, 215, 255]
        return f"#{levels[index // 36]:02x}{levels[(index // 6) % 6]:02x}{levels[index % 6]:02x}"
    grey = 8 + (index - 232) * 10
    return f"#{grey:02x}{grey:02x}{grey:02x}"


def _style(codes: list[int], state: dict[str, str]) -> None:
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            state.clear()
        elif code == 1:
            state["font-weight"] = "bold"
        elif code == 7:
            state["filter"] = "invert(1)"
        elif 30 <= code <= 37 or 90 <= code <= 97:
            state["color"] = (_BASIC if code < 90 else _BRIGHT)[code % 10]
        elif 40 <= code <= 47 or 100 <= code <= 107:
            state["background"] = (_BASIC if code < 100 else _BRIGHT)[code % 10]
        elif code in (38, 48) and i + 1 < len(codes):
            key = "color" if code == 38 else "background"
            if codes[i + 1] == 5 and i + 2 < len(codes):
                state[key] = _xterm256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                state[key] = "#{:02x}{:02x}{:02x}".format(*tuple(codes[i + 2 : i + 5]))
                i += 4
        elif code in (39, 49):
            state.pop("color" if code == 39 else "background", None)
        i += 1


def ansi_to_html(text: str) -> str:
    out: list[str] = []
    state: dict[str, str] = {}
    position = 0
    for match in _SGR.finditer(text):
        out.append(html.escape(text[position : match.start()]))
        _style([int(c) for c in match.group(1).split(";") if c] or [0], state)
        out.append(
            "</span><span style='{}'>".format(";".join(f"{k}:{v}" for k, v in state.items()))
        )
        position = match.end()
    out.append(html.escape(text[position:]))
    body = "".join(out)
    return (
        "<html><body style='margin:0;background:#1e1e1e;color:#d4d4d4'>"
        "<pre style='font:14px/1.25 DejaVu Sans Mono,monospace;margin:8px'><span>"
        f"{body}</span></pre></body></html>"
    )


def capture_tmux(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-e", "-t", session],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def render_png(screen: str, target: Path, chromium: str = "chromium") -> None:
    page = target.with_suffix(".html")
    page.write_text(ansi_to_html(screen))
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
            f"--screenshot={target}",
            "--window-size=1180,760",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
