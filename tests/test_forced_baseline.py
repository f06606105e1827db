"""The forced-baseline switch (JPEGAI_FAST_SIMD=scalar): every SIMD kernel (the AVX2 rANS decoder, the
register-tiled int16 GEMM tiles of the hyper-scale decoder and the mean path (csrc/int16_gemm.hpp), the
target_clones colour rows) runs its plain C++ twin, and a picture decodes (and encodes) to exactly the same
integers, ŷ and pixels as with the CPU's fastest kernels."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import _core
from shipped_model import requires_model

pytestmark = requires_model

CHILD = r"""
import hashlib, json, sys
import numpy as np
import jpegai_fast
from jpegai_fast import _core
data = open(sys.argv[1], "rb").read()
photo = np.load(sys.argv[2])
dec = jpegai_fast.Decoder(threads=2)
lat = dec.decode_latents(data)
out = {"features": _core.cpu_features(),
       "y_hat": {c: hashlib.sha256(lat["y_hat"][c].tobytes()).hexdigest() for c in lat["y_hat"]},
       "index": {c: hashlib.sha256(lat["index"][c].tobytes()).hexdigest() for c in lat["index"]},
       "pixels": hashlib.sha256(dec.decode(data).tobytes()).hexdigest(),
       "encoded": hashlib.sha256(jpegai_fast.encode(photo, quality=61.5, threads=2)).hexdigest()}
print(json.dumps(out))
"""


def _summary(env_extra, stream_path, photo_path):
    env = dict(os.environ, **env_extra)
    res = subprocess.run([sys.executable, "-c", CHILD, str(stream_path), str(photo_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def test_baseline_twins_give_identical_results(tmp_path):
    skdata = pytest.importorskip("skimage.data")
    photo = np.ascontiguousarray(skdata.chelsea()[20:220, 30:330])
    stream = jpegai_fast.encode(photo, rate_point=5, threads=2)
    (tmp_path / "s.jai").write_bytes(stream)
    np.save(tmp_path / "p.npy", photo)
    # the synthesis' C++ blocks have no baseline twin (under the switch the whole ORT graphs run, equal to float
    # rounding, docs/stages.md): both runs take the whole graphs, so the pixels compare the colour stage's twins
    ort = {"JPEGAI_FAST_UPSAMPLER": "ort"}
    fast = _summary(ort, tmp_path / "s.jai", tmp_path / "p.npy")
    base = _summary({**ort, "JPEGAI_FAST_SIMD": "scalar"}, tmp_path / "s.jai", tmp_path / "p.npy")
    assert base["features"] == "scalar (forced baseline)" and fast["features"] == _core.cpu_features()
    for key in ("y_hat", "index", "pixels", "encoded"):
        assert fast[key] == base[key], key
