"""atheris (libFuzzer) campaign through the whole picture API with structure-aware mutants.

    python tests/fuzz_picture_atheris.py -runs=1000000 -max_len=64 [CORPUS_DIR]

Each input's bytes seed tests/structure_mutator.py (header fields and segments edited, CRCs recomputed) applied to
one of four valid base streams (one monochrome with MDS and DWS), then Decoder.decode and Decoder.decode_latents
run on the mutant: our errors are the expected outcome; any other exception, a crash or a hang is a finding
(libFuzzer writes crash-*/timeout-*).  Coverage comes from our Python code only (structure_mutator,
jpegai_fast; not numpy, onnxruntime or Pillow).
With the sanitizer build of the extension the same command checks memory safety:

    CMAKE_ARGS=-DJPEGAI_SANITIZE=ON pip install --no-build-isolation --no-deps --target /tmp/asan_site .
    gcc -O2 -shared -fPIC tests/atheris_cov_shim.c -o /tmp/atheris_cov_shim.so
    JPEGAI_FUZZ_LATENTS_ONLY=1 JPEGAI_FUZZ_SITE=/tmp/asan_site \
        ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 \
        LD_PRELOAD="/tmp/atheris_cov_shim.so $(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
        python tests/fuzz_picture_atheris.py -runs=1000000 -max_len=64 -len_control=0 corpus

The shim comes first in LD_PRELOAD: libasan and libubsan export no-op __sanitizer_cov_* stubs, and without
the shim those stubs would take atheris's coverage callbacks.  libFuzzer then sees no coverage and the corpus
stays at one 1-byte unit: in a 4,000-run probe, 26 % of the inputs were under 2 bytes and 45 % repeated an
earlier input.  The shim forwards those callbacks to atheris's libFuzzer (atheris still prints "Coverage
symbols are being provided by a library other than libFuzzer", naming the shim; the corpus grows all the
same).  verify_asan_link_order=0 is needed because libasan is no longer the first preload; its malloc/new
still take precedence, since the shim defines no allocator.
JPEGAI_FUZZ_LATENTS_ONLY=1 sends every mutant through decode_latents only (see LATENTS_ONLY below).
"""
from __future__ import annotations

import os
import pathlib
import sys

import atheris

if os.environ.get("JPEGAI_FUZZ_SITE"):  # fuzz that installation (e.g. the sanitizer build), not an editable one
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    sys.path.insert(0, os.environ["JPEGAI_FUZZ_SITE"])

import numpy as np

# coverage of our code only: numpy, onnxruntime, Pillow etc. would only add noise to the corpus (and slow each run)
with atheris.instrument_imports(include=["structure_mutator", "jpegai_fast"]):
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
    if not data:
        return
    rng = np.random.default_rng(list(data))
    mutant = mutate(BASES[data[0] % len(BASES)], rng)
    run(DECODER, mutant, latents=LATENTS_ONLY or (len(data) > 1 and bool(data[1] & 1)))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
