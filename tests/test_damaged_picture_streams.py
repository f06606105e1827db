"""A real picture's stream, truncated at every byte and with single bits flipped, through Decoder.decode.

The stream of a 64 x 48 crop of a scikit-image photo (about 300 bytes) is damaged in every possible
truncation and in every possible single-bit flip (a couple of thousand; each fails fast at a CRC).
Every damaged stream must raise jpegai_fast.BitstreamError — nothing else, and no crash or hang: the
loop runs in a child process (a signal or a timeout fails the test, not the run).  No flip may decode:
every byte of a stream is either SOC/EOC (checked by the parser) or inside a segment covered by its
CRC-32 (docs/bitstream.md §1), and CRC-32 detects every single-bit error.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jpegai_fast
from shipped_model import requires_model  # noqa: E402

pytestmark = requires_model

CHILD = r"""
import json, sys
import numpy as np
import jpegai_fast
from jpegai_fast import Decoder

stream = open(sys.argv[1], "rb").read()
bits = [int(b) for b in sys.argv[2].split(",")]
dec = Decoder(threads=1)
stats = {"truncations": 0, "flips": 0, "other": [], "decoded": [], "ok_intact": False}

def attempt(data, what):
    try:
        dec.decode(data)
    except jpegai_fast.BitstreamError:
        return
    except Exception as e:  # anything else is a bug: record it
        stats["other"].append(f"{what}: {type(e).__name__}: {e}")
        return
    stats["decoded"].append(what)

for cut in range(len(stream)):
    attempt(stream[:cut], f"truncated to {cut}")
    stats["truncations"] += 1
for bit in bits:
    b = bytearray(stream)
    b[bit >> 3] ^= 0x80 >> (bit & 7)
    attempt(bytes(b), f"bit {bit} flipped (byte {bit >> 3})")
    stats["flips"] += 1
stats["ok_intact"] = dec.decode(stream).shape == (48, 64, 3)
print(json.dumps(stats))
"""


@pytest.fixture(scope="module")
def stream():
    skdata = pytest.importorskip("skimage.data")
    photo = np.ascontiguousarray(skdata.chelsea()[120:168, 200:264])  # 48 x 64, a real photo
    return jpegai_fast.encode(photo, rate_point=2, threads=2)


def test_every_truncation_and_every_bit_flip_raise_bitstream_error(stream, tmp_path):
    assert 200 <= len(stream) <= 2000
    bits = list(range(8 * len(stream)))
    path = tmp_path / "s.jai"
    path.write_bytes(stream)
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    r = subprocess.run([sys.executable, "-c", CHILD, str(path), ",".join(map(str, bits))], capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, f"decoder process died with {r.returncode} (negative = signal)\n{r.stderr[-4000:]}"
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    assert stats["ok_intact"]
    assert stats["truncations"] == len(stream) and stats["flips"] == len(bits)
    assert not stats["other"], stats["other"][:20]
    assert not stats["decoded"], stats["decoded"][:20]
