"""Files out from the editor: a picture the program makes comes back in runFinished with the
path the server saved it to, and forgeai.getArtifact returns its bytes."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import pytest
from pygls.exceptions import JsonRpcException

from tests.server.conftest import ForgeAIClient
from tests.server.test_project_environment import run_file
from tests.server.test_run_commands import execute

pytestmark = pytest.mark.sandbox

# A program that draws a 16x8 gradient as a PNG by hand (no imaging library needed).
PLOT = """
import os, struct, zlib
def chunk(kind, data):
    body = kind + data
    return struct.pack('>I', len(data)) + body + struct.pack('>I', zlib.crc32(body))
rows = b''.join(b'\\x00' + b''.join(bytes((x * 16, y * 32, 128)) for x in range(16))
                for y in range(8))
png = (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 16, 8, 8, 2, 0, 0, 0))
       + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))
open(os.path.join(os.environ['FORGEAI_OUTPUT_DIR'], 'plot.png'), 'wb').write(png)
print('drawn')
"""


def _valid_png(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    offset, size = 8, None
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, offset + 8 + length)
        assert zlib.crc32(kind + body) == crc
        if kind == b"IHDR":
            size = struct.unpack_from(">II", body)
        offset += 12 + length
    assert size is not None
    return size


async def test_a_picture_comes_back_saved_and_by_request(
    lsp: ForgeAIClient, tmp_path: Path
) -> None:
    program = tmp_path / "draw.py"
    program.write_text(PLOT)
    result = await run_file(lsp, program)
    assert (result["exitCode"], result["stdout"]) == (0, "drawn\n"), result["stderr"]
    (artifact,) = result["artifacts"]
    assert (artifact["name"], artifact["mime"]) == ("plot.png", "image/png")
    saved = Path(artifact["path"])
    assert saved.parent.name == result["runId"]
    assert _valid_png(saved.read_bytes()) == (16, 8)
    assert lsp.finished[result["runId"]]["artifacts"] == result["artifacts"]
    fetched = await execute(lsp, "forgeai.getArtifact", result["runId"], "plot.png")
    assert base64.b64decode(fetched["data"]) == saved.read_bytes()
    with pytest.raises(JsonRpcException, match=r"has no artifact 'other\.png'"):
        await execute(lsp, "forgeai.getArtifact", result["runId"], "other.png")
