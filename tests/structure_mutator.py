"""Structure-aware mutations of picture codestreams: header fields and segments are edited and the CRCs
recomputed (container.write), so mutants get past the container into the entropy decoders, the integer
networks, the mean path, the synthesis and the colour stage — which plain bit flips never reach.

    mutate(stream, rng) -> bytes       # one mutant of a valid stream
    run(decoder, mutant) -> outcome    # "ok" | "error:<field>"; anything but our errors propagates

Used by tests/test_structure_fuzz.py (seeded, in the suite) and tests/fuzz_picture_atheris.py (the long
coverage-guided campaign, docs/testing.md)."""
from __future__ import annotations

import numpy as np

import jpegai_fast
from jpegai_fast import container

HEADER_FIELDS = {  # field -> (low, high) of values worth trying (the container's own ranges and beyond)
    "width": (1, 600), "height": (1, 600), "bit_depth": (8, 16), "chroma_format": (0, 3),
    "colour_transform": (0, 1), "model_id": (0, 255), "operating_point": (0, 3), "rate_point": (0, 12),
    "gain_log_luma": (-9000, 9000), "gain_log_chroma": (-9000, 9000),
    "latent_channels_luma": (0, 300), "latent_channels_chroma": (0, 300),
    "coded_channels_luma": (0, 300), "coded_channels_chroma": (0, 300),
    "tile_size": (0, 1024), "tile_overlap": (0, 512),
}
SEGMENTS = ("SOZ", "SORP", "SORS", "DWS", "MDS")


def _mutate_payload(p: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(p)
    kind = rng.integers(6)
    if kind == 0 and b:  # flip bits
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == 1 and b:  # truncate
        b = b[:int(rng.integers(len(b)))]
    elif kind == 2:  # insert random bytes
        i = int(rng.integers(len(b) + 1))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
    elif kind == 3 and b:  # overwrite a run with a constant
        i = int(rng.integers(len(b)))
        n = int(rng.integers(1, 64))
        b[i:i + n] = bytes([int(rng.choice([0, 0xFF, int(rng.integers(256))]))]) * len(b[i:i + n])
    elif kind == 4:  # random payload of similar size
        b = bytearray(rng.integers(0, 256, max(1, len(b) + int(rng.integers(-8, 9))), dtype=np.uint8).tobytes())
    else:  # empty
        b = bytearray()
    return bytes(b)


def mutate(stream: bytes, rng: np.random.Generator) -> bytes:
    """One structure-aware mutant: 1-3 edits of header fields and segments, CRCs recomputed."""
    header, segs = container.parse(stream, max_pixels=1 << 30)
    segs = dict(segs)
    edits = 1 if rng.random() < 0.6 else int(rng.integers(2, 4))  # single edits go deepest
    for _ in range(edits):
        what = rng.integers(5)
        if what == 0:  # a header field, valid range or just beyond it
            field = str(rng.choice(list(HEADER_FIELDS)))
            lo, hi = HEADER_FIELDS[field]
            value = int(rng.integers(lo, hi + 1))
            try:
                setattr(header, field, value)
            except (TypeError, ValueError, OverflowError):
                pass
        elif what == 1:  # a segment's payload
            name = str(rng.choice(SEGMENTS))
            if name in segs:
                segs[name] = _mutate_payload(segs[name], rng)
        elif what == 2:  # drop or duplicate-swap segments
            name = str(rng.choice(SEGMENTS))
            if rng.random() < 0.5:
                segs.pop(name, None)
            else:
                other = str(rng.choice(SEGMENTS))
                if name in segs and other in segs:
                    segs[name], segs[other] = segs[other], segs[name]
        elif what == 4:  # a display window (DWS), inside the coded picture or not (then the writer refuses it)
            from jpegai_fast import _core

            try:
                segs["DWS"] = _core.write_display_window(header, int(rng.integers(1, header.width + 2)),
                                                         int(rng.integers(1, header.height + 2)))
            except (ValueError, OverflowError):
                segs["DWS"] = bytes(rng.integers(0, 256, int(rng.integers(0, 6)), dtype=np.uint8))
        else:  # the SOZ luma-length prefix: rewrite it
            if "SOZ" in segs and segs["SOZ"]:
                b = bytearray(segs["SOZ"])
                b[0] = int(rng.integers(256))
                segs["SOZ"] = bytes(b)
    try:
        return container.write(header, segs)
    except (ValueError, OverflowError):  # a field the writer itself refuses: mutate the bytes instead
        return stream[:-3] + bytes([int(rng.integers(256))]) + stream[-2:]


def run(decoder: jpegai_fast.Decoder, mutant: bytes, latents: bool = False) -> str:
    """Decode a mutant: "ok" (and then the output is checked for shape and range) or "error:<field>".
    Any exception other than our errors is a finding and propagates."""
    try:
        if latents:
            lat = decoder.decode_latents(mutant)
            for comp, y in lat["y_hat"].items():
                assert y.dtype == np.float32 and np.isfinite(y).all(), comp
            return "ok"
        rgb = decoder.decode(mutant)
    except jpegai_fast.JpegAiError as e:
        return f"error:{e.field}"
    h, segs = container.parse(mutant, max_pixels=1 << 30)
    w, ht = container.display_size(h, segs)
    assert rgb.dtype == np.uint8 and rgb.shape == (ht, w, 3)
    return "ok"
