"""Corrupt, truncated, random and hostile streams: only our errors, no crash, no hang, no stray read.

* test_fuzz_campaigns runs tests/fuzz_harness.py in a subprocess (guard pages around every stream,
  so an out-of-bounds read is a SIGSEGV there; a hang is a timeout) and checks its statistics.
* The hand-built hostile residual payloads and the hypothesis fuzzers run in-process.
* Residual payloads have no CRC: a corrupt payload may decode (to the right shape) when the corruption
  hits raw escape bits or collides in rANS state; the final-state check catches almost all else, and
  the detection rates are asserted per stream region.  The container has a CRC on every segment, so
  every mutation of it must raise.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jpegai_fast
from jpegai_fast import container, entropy
from streamutil import (
    KERNELS,
    OUR_ERRORS,
    BitWriter,
    decode,
    flip_bits,
    gaussian_residual,
    read_ue,
    smooth_cdf,
    valid_header,
)

HERE = pathlib.Path(__file__).resolve().parent
SKIP = entropy.SKIP_INDEX


def run_harness(*args, timeout=300):
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    r = subprocess.run([sys.executable, str(HERE / "fuzz_harness.py"), *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, f"fuzz harness died with {r.returncode} (negative = signal)\n{r.stderr[-4000:]}"
    return json.loads(r.stdout)


def summarise(results) -> str:
    lines = []
    for name, v in results.items():
        if name.startswith("_"):
            continue
        fam = " ".join(f"{f}={d}/{t}" for f, (t, d) in v["families"].items())
        lines.append(f"{name:28s} len={v['stream_len']:6d} detected {v['detected']}/{v['total']} "
                     f"({100 * v['detection_rate']:.2f}%)  {fam}")
    return "\n".join(lines)


def check_campaigns(results):
    assert results
    for name, v in results.items():
        if name.startswith("_"):
            continue
        assert v["n_foreign"] == 0, f"{name}: exceptions other than ours: {v['foreign']}"
        assert v["n_bad_accept"] == 0, f"{name}: {v['bad_accept']}"
        fam = v["families"]
        for f in ("truncate", "extend", "truncate_sampled", "constant", "random", "random_after_head"):
            if f in fam:
                total, detected = fam[f]
                assert detected == total, f"{name}: {total - detected} of {total} '{f}' streams accepted"
        if name == "container":
            # CRC-32 on every segment: every bit flip is caught.  Byte insertions/deletions may
            # legitimately cut out a whole segment (e.g. an empty one) -- the result must then be a
            # canonical stream, which Campaign checks (bad_accept above).
            for f in ("flip1", "flipN"):
                total, detected = fam[f]
                assert detected == total, f"container accepted a bit-flipped stream: {v['accepted_examples']}"
        else:
            for f, floor in (("flip1", 0.95), ("flip1_sampled", 0.95), ("flipN", 0.995), ("bytes", 0.97)):
                if f in fam:
                    total, detected = fam[f]
                    assert detected / total >= floor, f"{name}: '{f}' detection {detected}/{total} below {floor}"


def test_fuzz_campaigns():
    results = run_harness("--scale", "2", "--seed", "0")
    print("\n" + summarise(results))
    check_campaigns(results)
    assert set(results["_meta"]["kernels"]) == set(KERNELS)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_campaigns_long(seed):
    results = run_harness("--scale", "8", "--seed", str(seed), timeout=1200)
    print("\n" + summarise(results))
    check_campaigns(results)


# --------------------------------------------------------------------------------------------------
# Detection by stream region (residual payload)
# --------------------------------------------------------------------------------------------------
def payload_regions(data: bytes) -> np.ndarray:
    """Per bit: 0 directory (incl. padding), 1 rANS words, 2 bypass bytes."""
    s_minus1, pos = read_ue(data, 0)
    _, pos = read_ue(data, pos)
    sizes = []
    for _ in range(s_minus1 + 1):
        w, pos = read_ue(data, pos)
        b, pos = read_ue(data, pos)
        sizes.append((w, b))
    region = np.zeros(len(data) * 8, np.int8)
    at = (pos + 7) // 8
    for w, b in sizes:
        region[at * 8:(at + 2 * w) * 8] = 1
        at += 2 * w
        region[at * 8:(at + b) * 8] = 2
        at += b
    assert at == len(data)
    return region


@pytest.mark.parametrize("kernel", KERNELS)
def test_single_bit_flip_detection_by_region(kernel):
    sym, idx = gaussian_residual(np.random.default_rng(21), (5, 12, 12), skip_fraction=0.1, extremes=10)
    data = entropy.encode_residual(sym, idx, substreams=4)
    region = payload_regions(data)
    hits = np.zeros(3, int)
    tries = np.bincount(region, minlength=3)
    for bit in range(len(data) * 8):
        try:
            out = decode(flip_bits(data, [bit]), idx, kernel=kernel)
        except OUR_ERRORS as e:
            assert e.field
            hits[region[bit]] += 1
            continue
        assert out.shape == idx.shape and out.dtype == np.int16
    rates = hits / np.maximum(tries, 1)
    print(f"\n[{kernel}] single-bit flips detected: directory {hits[0]}/{tries[0]}, "
          f"rANS words {hits[1]}/{tries[1]} ({100 * rates[1]:.2f}%), bypass {hits[2]}/{tries[2]} "
          f"({100 * rates[2]:.1f}%), all {hits.sum()}/{tries.sum()} ({100 * hits.sum() / tries.sum():.2f}%)")
    assert hits[0] == tries[0]          # the directory is fully cross-checked
    assert rates[1] >= 0.99             # the final-state check
    assert hits.sum() / tries.sum() >= 0.95


@pytest.mark.skipif(len([k for k in KERNELS if k]) < 2, reason="only one decode kernel in this build")
def test_kernels_agree_on_corrupt_streams():
    """Differential: on every corrupted stream all kernels either all raise or return identical arrays."""
    sym, idx = gaussian_residual(np.random.default_rng(24), (3, 20, 20), skip_fraction=0.1, extremes=10)
    data = entropy.encode_residual(sym, idx, substreams=3)
    rng = np.random.default_rng(1)
    cases = [flip_bits(data, [b]) for b in range(0, len(data) * 8, 3)]
    cases += [flip_bits(data, rng.choice(len(data) * 8, size=int(rng.integers(2, 9)), replace=False))
              for _ in range(300)]
    disagreements = []
    for i, case in enumerate(cases):
        outcomes = []
        for kernel in KERNELS:
            try:
                outcomes.append(decode(case, idx, kernel=kernel).tobytes())
            except OUR_ERRORS:
                outcomes.append(None)
        if len(set(outcomes)) != 1:
            disagreements.append(i)
    assert not disagreements, f"kernels disagree on {len(disagreements)} of {len(cases)} corrupt streams"


def test_every_truncation_raises_for_each_substream_count():
    sym, idx = gaussian_residual(np.random.default_rng(22), (300,), skip_fraction=0.2, extremes=5)
    for substreams in (1, 2, 8, 64):
        data = entropy.encode_residual(sym, idx, substreams=substreams)
        for kernel in KERNELS:
            for cut in range(len(data)):
                with pytest.raises(jpegai_fast.BitstreamError):
                    decode(data[:cut], idx, kernel=kernel)
            with pytest.raises(jpegai_fast.BitstreamError):
                decode(data + b"\x00", idx, kernel=kernel)


def test_wrong_scale_map_is_detected_or_harmless():
    sym, idx = gaussian_residual(np.random.default_rng(23), (2000,))
    data = entropy.encode_residual(sym, idx, substreams=2)
    detected = 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        other = idx.copy()
        where = rng.choice(idx.size, size=int(rng.integers(1, 20)), replace=False)
        other[where] = rng.integers(0, 64, where.size).astype(np.uint8)
        if np.array_equal(other, idx):
            continue
        try:
            out = entropy.decode_residual(data, other)
            assert out.shape == idx.shape
        except OUR_ERRORS:
            detected += 1
    assert detected >= 150
    # a scale map with a different number of coded positions never decodes
    fewer = idx.copy()
    fewer[7] = SKIP
    with pytest.raises(jpegai_fast.BitstreamError):
        entropy.decode_residual(data, fewer)
    with pytest.raises(jpegai_fast.BitstreamError):
        entropy.decode_residual(data, idx[:-1])


# --------------------------------------------------------------------------------------------------
# Hand-built hostile residual payloads
# --------------------------------------------------------------------------------------------------
def directory(substreams_minus1, coded, pairs, pad_bit=0) -> bytes:
    w = BitWriter().ue(substreams_minus1).ue(coded)
    for words, bypass in pairs:
        w.ue(words).ue(bypass)
    return w.align(pad_bit).bytes()


def state_words(lanes=8, state=1 << 16) -> bytes:
    out = b""
    for _ in range(lanes):
        out += (state >> 16).to_bytes(2, "little") + (state & 0xFFFF).to_bytes(2, "little")
    return out


IDX10 = np.full(10, 30, np.uint8)


def hostile(data: bytes, idx=IDX10, field=None):
    for kernel in KERNELS:
        with pytest.raises(jpegai_fast.BitstreamError) as info:
            decode(data, idx, kernel=kernel)
        assert info.value.field
        if field:
            assert info.value.field.startswith(field), str(info.value)


def test_handbuilt_minimal_valid_payload():
    # 0 coded symbols, 1 substream: directory + 8 flushed lanes at L = 2^16
    data = directory(0, 0, [(16, 0)]) + state_words()
    for kernel in KERNELS:
        np.testing.assert_array_equal(decode(data, np.full(4, SKIP, np.uint8), kernel=kernel), 0)
    assert data == entropy.encode_residual(np.zeros(4, np.int16), np.full(4, SKIP, np.uint8))


@pytest.mark.parametrize("data", [
    b"",
    directory(63, 10, [(16, 0)]),                              # 64 substreams, 1 directory entry
    directory(63, 10, [(16, 0)] * 64),                         # 64 substreams, no words at all
    directory(63, 10, [(16, 0)] * 64) + state_words(),         # ... words for one only
    directory(64, 10, [(16, 0)] * 65) + state_words() * 65,    # 65 substreams
    directory(2**32 - 2, 10, []),                              # absurd substream count
    b"\x00\x00\x00\x00\x00\x00",                               # ue prefix longer than 31 zeros
    b"\x00\x00\x00\x01\xff\xff\xff\xff",                       # ue = 2^32 - 2 substreams
    directory(0, 11, [(26, 0)]) + state_words() + b"\0" * 20,  # coded count != scale map
    directory(0, 2**32 - 2, [(26, 0)]) + state_words(),
    directory(0, 10, [(15, 0)]) + state_words()[:30],          # fewer words than the flush
    directory(0, 10, [(27, 0)]) + state_words() + b"\0" * 22,  # more words than symbols + flush
    directory(0, 10, [(2**32 - 2, 0)]) + state_words(),        # absurd word count
    directory(0, 10, [(16, 2**32 - 2)]) + state_words(),       # absurd bypass size
    directory(0, 10, [(16, 5)]) + state_words() + b"\0" * 4,   # bypass shorter than declared
    directory(0, 10, [(16, 0)]) + state_words() + b"\0",       # payload longer than declared
    directory(0, 10, [(16, 0)]) + b"\0" * 32,                  # initial states 0 < L
    directory(0, 10, [(16, 0)]) + b"\xff" * 32,                # states at the top; wrong symbols
    directory(0, 10, [(16, 0)], pad_bit=1) + state_words(),    # non-zero directory padding
    directory(0, 10, [(16, 0)]) + state_words(),               # states at L but 10 symbols to decode
])
def test_hostile_residual_payloads(data):
    hostile(data)


def test_hostile_64_substreams_tiny_payload():
    idx = np.full(3, 40, np.uint8)
    hostile(directory(63, 3, [(16, 0)] * 64) + b"\x00" * 40, idx)
    # 64 substreams for 3 symbols is legal when the encoder wrote it: 61 substreams are empty
    sym = np.array([5, -7, 300], np.int16)
    good = entropy.encode_residual(sym, idx, substreams=64)
    assert len(good) > 64 * 32
    np.testing.assert_array_equal(entropy.decode_residual(good, idx), sym)


def test_hostile_escape_values():
    """Escapes whose bypass bits claim magnitudes beyond int16 or run out of bits."""
    idx = np.full(1, 0, np.uint8)          # level 0: radius 0, every non-zero value escapes
    base = entropy.encode_residual(np.array([1], np.int16), idx)
    np.testing.assert_array_equal(entropy.decode_residual(base, idx), [1])
    s1, pos = read_ue(base, 0)
    coded, pos = read_ue(base, pos)
    words, pos = read_ue(base, pos)
    bypass, pos = read_ue(base, pos)
    head = (pos + 7) // 8
    rans_bytes = base[head:head + 2 * words]
    for bits in [BitWriter().put(0, 1).ue(32767).bytes(),         # +32768: outside int16
                 BitWriter().put(1, 1).ue(32768).bytes(),         # -32769
                 BitWriter().put(1, 1).put(0, 40).bytes(),        # prefix too long
                 BitWriter().put(1, 1).put(0, 20).bytes(),        # runs out of bypass bits
                 BitWriter().put(0, 1).ue(3).put(1, 3).bytes(),   # unused non-zero bits after the value
                 b""]:
        data = directory(0, 1, [(words, len(bits))]) + rans_bytes + bits
        hostile(data, idx)
    for value, bits in [(32767, BitWriter().put(0, 1).ue(32766).bytes()),
                        (-32768, BitWriter().put(1, 1).ue(32767).bytes())]:
        data = directory(0, 1, [(words, len(bits))]) + rans_bytes + bits
        np.testing.assert_array_equal(entropy.decode_residual(data, idx), [value])


def test_hostile_factorized_payloads():
    model = entropy.FactorizedModel(smooth_cdf(2, 5), 2)
    values = np.zeros((2, 3), np.int16)
    good = model.encode(values, substreams=2)
    np.testing.assert_array_equal(model.decode(good, [3]), values)
    for data in [b"", good[:-1], good + b"\0", directory(1, 5, [(16, 0), (16, 0)]) + state_words() * 2,
                 directory(64, 6, [(16, 0)] * 65), directory(0, 6, [(2**32 - 2, 0)]), b"\xff" * 100]:
        with pytest.raises(jpegai_fast.BitstreamError) as info:
            model.decode(data, [3])
        assert info.value.field
    with pytest.raises(jpegai_fast.BitstreamError):
        model.decode(good, [4])            # plane shape does not match the stream
    with pytest.raises(OUR_ERRORS):
        model.decode(good, [2**20, 2**13])  # plane above the limit, or a count mismatch: never a crash


# --------------------------------------------------------------------------------------------------
# Hypothesis fuzzers
# --------------------------------------------------------------------------------------------------
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
_sym, _idx = gaussian_residual(np.random.default_rng(31), (4, 10, 10), skip_fraction=0.2, extremes=8)
VALID_RESIDUAL = {s: entropy.encode_residual(_sym, _idx, substreams=s) for s in (1, 5)}
_model = entropy.FactorizedModel(smooth_cdf(3, 17, seed=5), 8)
_zvals = np.clip(np.rint(np.random.default_rng(5).normal(0, 2, (3, 6, 6))), -8, 8).astype(np.int16)
VALID_Z = _model.encode(_zvals, substreams=3)
VALID_CONTAINER = container.write(valid_header(), {"SOZ": VALID_Z, "SORP": VALID_RESIDUAL[5], "UDI": b"x"})


def _residual_ok_or_ours(data, kernel):
    try:
        out = decode(data, _idx, threads=2, kernel=kernel)
    except OUR_ERRORS as e:
        assert e.field
        return True
    assert out.shape == _idx.shape and out.dtype == np.int16
    return False


mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=8)


@FUZZ
@given(st.binary(max_size=700), st.sampled_from(KERNELS))
def test_hypothesis_residual_random_bytes(data, kernel):
    _residual_ok_or_ours(data, kernel)


@FUZZ
@given(st.sampled_from([1, 5]), mutations, st.integers(0, 10**6), st.sampled_from(KERNELS))
def test_hypothesis_residual_mutations(substreams, muts, cut, kernel):
    b = bytearray(VALID_RESIDUAL[substreams])
    for pos, xor in muts:
        b[pos % len(b)] ^= xor
    _residual_ok_or_ours(bytes(b), kernel)
    _residual_ok_or_ours(bytes(b[:cut % len(b)]), kernel)


@FUZZ
@given(st.binary(max_size=400), st.booleans())
def test_hypothesis_container_random_bytes(data, prefix):
    with pytest.raises(OUR_ERRORS):
        container.parse((b"\xff\x80" if prefix else b"") + data)


@FUZZ
@given(mutations, st.integers(0, 10**6))
def test_hypothesis_container_mutations(muts, cut):
    b = bytearray(VALID_CONTAINER)
    for pos, xor in muts:
        b[pos % len(b)] ^= xor
    if bytes(b) != VALID_CONTAINER:
        with pytest.raises(OUR_ERRORS) as info:
            container.parse(bytes(b))
        assert info.value.field
    with pytest.raises(jpegai_fast.BitstreamError):
        container.parse(VALID_CONTAINER[:cut % len(VALID_CONTAINER)])


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutations.map(
    lambda ms: bytes(b ^ dict((p % len(VALID_Z), x) for p, x in ms).get(i, 0) for i, b in enumerate(VALID_Z)))))
def test_hypothesis_factorized(data):
    try:
        out = _model.decode(data, (6, 6), threads=2)
    except OUR_ERRORS as e:
        assert e.field
        return
    assert out.shape == _zvals.shape and out.dtype == np.int16


# --------------------------------------------------------------------------------------------------
# atheris (optional): coverage-guided, libFuzzer mutations on the same three targets
# --------------------------------------------------------------------------------------------------
def test_atheris_short_run(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate([b"R" + VALID_RESIDUAL[1], b"R" + VALID_RESIDUAL[5], b"C" + VALID_CONTAINER,
                              b"Z" + VALID_Z]):
        (corpus / f"seed{i}").write_bytes(seed)
    r = subprocess.run([sys.executable, str(HERE / "fuzz_atheris.py"), "-runs=30000", "-max_len=4096",
                        "-seed=1", str(corpus)], capture_output=True, text=True, timeout=300)
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert "Done 30000 runs" in tail or "DONE" in tail, tail
