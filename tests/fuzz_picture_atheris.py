"""atheris (libFuzzer) campaign through the whole picture API with structure-aware mutants.

    python tests/fuzz_picture_atheris.py -runs=1000000 -max_len=64 [CORPUS_DIR]

Each input's bytes seed tests/structure_mutator.py (header fields and segments edited, CRCs recomputed) applied to
one of four valid base streams (one monochrome with MDS and DWS), then Decoder.decode and Decoder.decode_latents
run on the mutant: our errors are the expected outcome; any other exception, a crash or a hang is a finding
(libFuzzer writes crash-*/timeout-*).
With the sanitizer build of the extension the same command checks memory safety:

    CMAKE_ARGS=-DJPEGAI_SANITIZE=ON pip install --no-build-isolation --no-deps --target /tmp/asan_site .
    JPEGAI_FUZZ_SITE=/tmp/asan_site ASAN_OPTIONS=detect_leaks=0 \
        LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
        python tests/fuzz_picture_atheris.py -runs=1000000 -max_len=64
"""
from __future__ import annotations

import os
import pathlib
import sys

import atheris

if os.environ.get("JPEGAI_FUZZ_SITE"):  # fuzz that installation (e.g. the sanitizer build), not an editable one
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    sys.path.insert(0, os.environ["JPEGAI_FUZZ_SITE"])

with atheris.instrument_imports():
    import numpy as np

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from structure_mutator import mutate, run

    import jpegai_fast


def _bases():
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:90, :130])
    return [jpegai_fast.encode(photo, rate_point=1),
            jpegai_fast.encode(photo[:40, :70], rate_point=5, substreams=3),
            jpegai_fast.encode(np.ascontiguousarray(data.coffee()[:80, :80]), quality=46.5, tile_size=64),
            # monochrome (4:0:0), with metadata (MDS) and a display window (DWS: a side below 64)
            jpegai_fast.encode(np.ascontiguousarray(data.camera()[:50, :70]), rate_point=3, exif=b"Exif\0\0II*\0",
                               xmp="<x:xmpmeta/>")]


BASES = _bases()
DECODER = jpegai_fast.Decoder(threads=1, max_pixels=600 * 600)
# JPEGAI_FUZZ_LATENTS_ONLY=1: every mutant through decode_latents only (the whole C++ latent domain, without the
# ONNX Runtime synthesis, which is not our code and takes ~90 % of a decode): the sanitizer campaign's mode
LATENTS_ONLY = os.environ.get("JPEGAI_FUZZ_LATENTS_ONLY") == "1"


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    rng = np.random.default_rng(list(data))
    mutant = mutate(BASES[data[0] % len(BASES)], rng)
    run(DECODER, mutant, latents=LATENTS_ONLY or bool(data[1] & 1))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
