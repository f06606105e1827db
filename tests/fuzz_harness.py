"""Deterministic fuzz campaigns against the three stream decoders, run in a subprocess by test_fuzz.py.

    python tests/fuzz_harness.py [--scale 1.0] [--seed 0]

Every mutated stream is copied flush against a PROT_NONE guard page (alternately after its end and
before its start), so a read outside the buffer kills this process with SIGSEGV instead of passing
silently; the parent test sees the signal (and a hang as a timeout).  Prints one JSON object:
per campaign the number of streams, how many raised our errors ("detected"), how many decoded
("accepted", shape/dtype checked) and any other exception ("foreign": must stay empty).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jpegai_fast  # noqa: E402
from jpegai_fast import container, entropy  # noqa: E402
from streamutil import (  # noqa: E402
    KERNELS,
    OUR_ERRORS,
    decode,
    flip_bits,
    gaussian_residual,
    guarded_arena,
    smooth_cdf,
    valid_header,
)


class Campaign:
    def __init__(self, name: str, arena, run, valid: bytes, expect_shape=None, canonical=None):
        self.name, self.arena, self.run, self.valid = name, arena, run, valid
        self.expect_shape, self.canonical = expect_shape, canonical
        self.total = self.detected = self.accepted = 0
        self.fields: dict[str, int] = {}
        self.foreign: list[str] = []
        self.bad_accept: list[str] = []
        self.accepted_labels: list[str] = []
        self._flip = False

    def __call__(self, data: bytes, label: str = "") -> None:
        if data == self.valid:
            return                       # a mutation that changed nothing is not a test case
        self.total += 1
        self._flip = not self._flip
        view = self.arena.place(data, at_end=self._flip)
        try:
            out = self.run(view)
        except OUR_ERRORS as e:
            self.detected += 1
            self.fields[e.field] = self.fields.get(e.field, 0) + 1
            if not e.field:
                self.foreign.append(f"{label}: error without field: {e!r}")
            return
        except Exception as e:  # noqa: BLE001 - anything else is a finding
            self.foreign.append(f"{label}: {type(e).__name__}: {e}"[:300])
            return
        self.accepted += 1
        self.accepted_labels.append(label)
        if self.canonical is not None:
            # an accepted container must be a valid stream in its own right: the writer reproduces it
            if self.canonical(out) != data:
                self.bad_accept.append(f"{label}: accepted a non-canonical stream (len {len(data)})")
        elif self.expect_shape is not None:
            if not (isinstance(out, np.ndarray) and out.dtype == np.int16 and out.shape == self.expect_shape):
                self.bad_accept.append(f"{label}: wrong output {type(out)} {getattr(out, 'shape', None)}")

    def report(self) -> dict:
        return dict(total=self.total, detected=self.detected, accepted=self.accepted,
                    detection_rate=self.detected / max(1, self.total), foreign=self.foreign[:20],
                    n_foreign=len(self.foreign), bad_accept=self.bad_accept[:20], n_bad_accept=len(self.bad_accept),
                    accepted_examples=self.accepted_labels[:10],
                    fields=dict(sorted(self.fields.items(), key=lambda kv: -kv[1])[:12]))


def mutate_all(c: Campaign, valid: bytes, rng: np.random.Generator, scale: float, *, truncations=True,
               single_flips=True, multi_flips=3000, byte_ops=1000, random_streams=2000,
               random_prefix: bytes = b"") -> dict:
    """Runs every mutation family on `valid` and returns per-family (total, detected)."""
    fam: dict[str, list[int]] = {}

    def family(name, streams):
        before_t, before_d = c.total, c.detected
        for label, data in streams:
            c(data, f"{name}:{label}")
        fam[name] = [c.total - before_t, c.detected - before_d]

    n_bits = len(valid) * 8
    if truncations:
        family("truncate", ((f"len={k}", valid[:k]) for k in range(len(valid))))
        family("extend", ((f"+{t!r}", valid + t) for t in (b"\x00", b"\xff", b"\x00\x00", valid[:7])))
    if single_flips:
        family("flip1", ((f"bit={b}", flip_bits(valid, [b])) for b in range(n_bits)))

    def multi():
        for _ in range(int(multi_flips * scale)):
            k = int(rng.integers(2, 17))
            pos = rng.choice(n_bits, size=min(k, n_bits), replace=False)
            yield f"bits={sorted(pos.tolist())}", flip_bits(valid, pos)
    family("flipN", multi())

    def byte_mutations():
        for i in range(int(byte_ops * scale)):
            b = bytearray(valid)
            op = i % 4
            at = int(rng.integers(0, len(b) + 1))
            if op == 0 and b:
                b[min(at, len(b) - 1)] = int(rng.integers(0, 256))
            elif op == 1:
                b[at:at] = rng.bytes(int(rng.integers(1, 9)))
            elif op == 2:
                del b[at:at + int(rng.integers(1, 9))]
            else:  # splice a chunk of the stream onto itself
                src = int(rng.integers(0, len(b) + 1))
                b[at:at] = valid[src:src + int(rng.integers(1, 33))]
            yield f"op{op}@{at}", bytes(b)
    family("bytes", byte_mutations())

    def randoms():
        for i in range(int(random_streams * scale)):
            n = int(rng.integers(0, 2 * len(valid) + 8))
            yield f"random{i}", random_prefix + rng.bytes(n)
    family("random", randoms())
    family("constant", ((f"{v}x{n}", bytes([v]) * n) for v in (0, 0xFF, 0x80, 0x01) for n in (1, 2, 7, 64, 600)))
    return fam


def residual_campaigns(rng, scale):
    results = {}
    sym, idx = gaussian_residual(np.random.default_rng(1), (6, 9, 7), skip_fraction=0.15, extremes=6)
    for substreams in (1, 3, 64):
        valid = entropy.encode_residual(sym, idx, substreams=substreams)
        for kernel in KERNELS:
            with guarded_arena(4 * len(valid) + 64) as arena:
                c = Campaign(f"residual[s={substreams},{kernel}]", arena,
                             lambda v, k=kernel: decode(v, idx, threads=2, kernel=k), valid, expect_shape=idx.shape)
                ok = c.run(arena.place(valid))
                assert np.array_equal(ok, sym)
                fam = mutate_all(c, valid, rng, scale if substreams == 3 else scale / 3)
                results[c.name] = dict(c.report(), families=fam, stream_len=len(valid))
    # a larger tensor: flips sampled over the whole stream, escapes in the bypass bits included
    sym, idx = gaussian_residual(np.random.default_rng(2), (32, 40, 40), skip_fraction=0.1, extremes=300)
    valid = entropy.encode_residual(sym, idx, substreams=8)
    for kernel in KERNELS:
        with guarded_arena(2 * len(valid) + 64) as arena:
            c = Campaign(f"residual_large[{kernel}]", arena,
                         lambda v, k=kernel: decode(v, idx, threads=0, kernel=k), valid, expect_shape=idx.shape)
            fam = mutate_all(c, valid, rng, scale / 3, truncations=False, single_flips=False,
                             multi_flips=1000, byte_ops=300, random_streams=100)
            n_bits = len(valid) * 8
            before = (c.total, c.detected)
            for b in rng.choice(n_bits, size=int(2000 * scale), replace=False):
                c(flip_bits(valid, [int(b)]), f"flip1:bit={b}")
            fam["flip1_sampled"] = [c.total - before[0], c.detected - before[1]]
            before = (c.total, c.detected)
            for k in rng.choice(len(valid), size=int(200 * scale), replace=False):
                c(valid[:int(k)], f"truncate:{k}")
            fam["truncate_sampled"] = [c.total - before[0], c.detected - before[1]]
            results[c.name] = dict(c.report(), families=fam, stream_len=len(valid))
    return results


def factorized_campaigns(rng, scale):
    model = entropy.FactorizedModel(smooth_cdf(6, 21, seed=3), 10)
    values = np.clip(np.rint(np.random.default_rng(3).normal(0, 2.5, (6, 7, 9))), -10, 10).astype(np.int16)
    results = {}
    for substreams in (1, 4):
        valid = model.encode(values, substreams=substreams)
        with guarded_arena(4 * len(valid) + 64) as arena:
            c = Campaign(f"factorized[s={substreams}]", arena, lambda v: model.decode(v, (7, 9), threads=2),
                         valid, expect_shape=values.shape)
            assert np.array_equal(c.run(arena.place(valid)), values)
            fam = mutate_all(c, valid, rng, scale / 2)
            results[c.name] = dict(c.report(), families=fam, stream_len=len(valid))
    return results


def container_campaigns(rng, scale):
    sym, idx = gaussian_residual(np.random.default_rng(4), (4, 8, 8), skip_fraction=0.1)
    segs = {"SOZ": bytes(range(40)), "SORP": entropy.encode_residual(sym, idx, substreams=2),
            "SORS": b"", "UDI": b"metadata \x00\xff"}
    h = valid_header(width=1920, height=1080, tile_size=512, tile_overlap=64, gain_log_luma=-300)
    valid = container.write(h, segs)
    results = {}
    with guarded_arena(4 * len(valid) + 64) as arena:
        c = Campaign("container", arena, lambda v: container.parse(v), valid,
                     canonical=lambda out: container.write(out[0], out[1]))
        hdr, got = c.run(arena.place(valid))
        assert got == segs
        fam = mutate_all(c, valid, rng, scale, random_prefix=b"")
        before = (c.total, c.detected)
        for i in range(int(1000 * scale)):   # random tails after a valid SOC (and after a valid PIH)
            head = valid[:2] if i % 2 else valid[:len(container.write(h, {})) - 2]   # SOC, or SOC + PIH
            c(head + rng.bytes(int(rng.integers(0, 300))), f"random_after_head{i}")
        fam["random_after_head"] = [c.total - before[0], c.detected - before[1]]
        results["container"] = dict(c.report(), families=fam, stream_len=len(valid))
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the sampled mutation counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["residual", "factorized", "container"], default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    out = {}
    if args.only in (None, "container"):
        out.update(container_campaigns(rng, args.scale))
    if args.only in (None, "factorized"):
        out.update(factorized_campaigns(rng, args.scale))
    if args.only in (None, "residual"):
        out.update(residual_campaigns(rng, args.scale))
    out["_meta"] = dict(seconds=round(time.time() - t0, 2), kernels=KERNELS, scale=args.scale, seed=args.seed,
                        version=jpegai_fast.__version__)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
