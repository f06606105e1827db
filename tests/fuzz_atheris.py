"""atheris (libFuzzer) target for the three stream decoders.  Optional: `pip install atheris`.

    python tests/fuzz_atheris.py -runs=100000 -max_len=4096 CORPUS_DIR

The first input byte picks the target: 'C' container.parse, 'Z' FactorizedModel.decode, anything else
entropy.decode_residual (every kernel the build has).  Our errors are the expected outcome; any other
exception, a crash or a hang is a finding (libFuzzer writes the input to crash-*/timeout-*).
test_fuzz.py::test_atheris_short_run seeds the corpus with valid streams and runs 30k inputs.
"""
from __future__ import annotations

import pathlib
import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from jpegai_fast import container, entropy
    from streamutil import KERNELS, OUR_ERRORS, decode, gaussian_residual, smooth_cdf

_sym, _idx = gaussian_residual(np.random.default_rng(31), (4, 10, 10), skip_fraction=0.2, extremes=8)
_model = entropy.FactorizedModel(smooth_cdf(3, 17, seed=5), 8)


def one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[:1], data[1:]
    try:
        if target == b"C":
            container.parse(body)
        elif target == b"Z":
            out = _model.decode(body, (6, 6), threads=2)
            assert out.shape == (3, 6, 6)
        else:
            for kernel in KERNELS:
                out = decode(body, _idx, threads=2, kernel=kernel)
                assert out.shape == _idx.shape and out.dtype == np.int16
    except OUR_ERRORS as e:
        assert e.field, "our error without a field"


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
