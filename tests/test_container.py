"""The codestream container: header/segment round trips, CRC layout, limits, hostile constructions."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jpegai_fast
from jpegai_fast import container
from streamutil import (
    OUR_ERRORS,
    PIH,
    SOC,
    SORP,
    SORS,
    SOZ,
    UDI,
    codestream,
    header_dict,
    pih_payload,
    segment,
    ue_bytes,
    valid_header,
    walk_codestream,
)

MARKER_OF = container.MARKERS


def parse_error(data, cls=jpegai_fast.BitstreamError, field=None, **kw):
    with pytest.raises(cls) as info:
        container.parse(data, **kw)
    assert type(info.value) is cls
    assert isinstance(info.value.field, str) and info.value.field
    if field is not None:
        assert info.value.field == field, str(info.value)
    return info.value


# --------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------
def test_constants_and_markers():
    assert container.FORMAT_VERSION == 1
    assert container.DEFAULT_MAX_PIXELS == 1 << 26
    assert MARKER_OF == {"SOZ": SOZ, "SORP": SORP, "SORS": SORS, "UDI": UDI, "MDS": 0xFF8D, "DWS": 0xFF8E}


def test_default_header_roundtrip():
    h = valid_header()
    data = container.write(h, {})
    h2, segs = container.parse(data)
    assert header_dict(h2) == header_dict(h) and segs == {}
    assert data[:2] == b"\xff\x80" and data[-2:] == b"\xff\x81"


headers = st.fixed_dictionaries({
    "width": st.integers(1, 65535), "height": st.integers(1, 4096),
    "colour_transform": st.integers(0, 1), "model_id": st.integers(0, 255),
    "operating_point": st.integers(0, 2), "rate_point": st.integers(0, 255),
    "gain_log_luma": st.integers(-8191, 8191), "gain_log_chroma": st.integers(-8191, 8191),
    "latent_channels_luma": st.integers(1, 1024), "latent_channels_chroma": st.integers(1, 1024),
    "coded_luma_frac": st.floats(0, 1), "coded_chroma_frac": st.floats(0, 1),
    "tile16": st.integers(0, 4096), "overlap_frac": st.floats(0, 1),
})
# (MDS and DWS payloads have a syntax of their own, checked by the writer: tests/test_metadata.py,
# tests/test_hardening.py)
payload_sets = st.dictionaries(st.sampled_from(sorted(set(MARKER_OF) - {"MDS", "DWS"})), st.binary(max_size=300),
                               max_size=4)


def make_header(d):
    h = valid_header()
    for k in ("width", "height", "colour_transform", "model_id", "operating_point", "rate_point",
              "gain_log_luma", "gain_log_chroma", "latent_channels_luma", "latent_channels_chroma"):
        setattr(h, k, d[k])
    h.coded_channels_luma = int(d["coded_luma_frac"] * d["latent_channels_luma"])
    h.coded_channels_chroma = int(d["coded_chroma_frac"] * d["latent_channels_chroma"])
    h.tile_size = 16 * d["tile16"]
    h.tile_overlap = 0 if d["tile16"] == 0 else 16 * int(d["overlap_frac"] * (d["tile16"] - 1))
    return h


@settings(max_examples=200, deadline=None)
@given(headers, payload_sets, st.randoms(use_true_random=False))
def test_property_roundtrip(hd, payloads, rnd):
    h = make_header(hd)
    items = list(payloads.items())
    rnd.shuffle(items)                      # any segment order
    data = container.write(h, dict(items))
    h2, segs = container.parse(data, max_pixels=1 << 28)  # the syntax round trip, up to 65535 x 4096
    assert header_dict(h2) == header_dict(h)
    assert segs == payloads
    # layout: SOC, PIH, the segments in the written order, EOC, each CRC = zlib.crc32(marker..payload)
    walked = walk_codestream(data)
    assert [s["marker"] for s in walked] == [PIH] + [MARKER_OF[n] for n, _ in items]
    for s in walked:
        assert s["crc"] == zlib.crc32(s["crc_input"])
    assert [s["payload"] for s in walked[1:]] == [p for _, p in items]
    # the independent PIH writer in streamutil produces the same payload bytes
    assert walked[0]["payload"] == pih_payload(
        width=h.width, height=h.height, colour_transform=h.colour_transform, model_id=h.model_id,
        operating_point=h.operating_point, rate_point=h.rate_point, gain_luma=h.gain_log_luma,
        gain_chroma=h.gain_log_chroma, latent_luma=h.latent_channels_luma,
        latent_chroma=h.latent_channels_chroma, coded_luma=h.coded_channels_luma,
        coded_chroma=h.coded_channels_chroma, tile16=h.tile_size // 16, overlap16=h.tile_overlap // 16)


def test_crc_is_zlib_crc32_over_marker_to_payload():
    payload = bytes(range(256)) * 3
    data = container.write(valid_header(), {"SORP": payload, "UDI": b""})
    segs = walk_codestream(data)
    sorp = segs[1]
    assert sorp["marker"] == SORP and sorp["payload"] == payload
    # marker (2 bytes BE) | ue(768) -> 19 bits, zero-padded to 3 bytes | payload | CRC BE
    assert data[sorp["begin"]:sorp["payload_at"]] == b"\xff\x89" + ue_bytes(768)
    assert sorp["crc"] == zlib.crc32(b"\xff\x89" + ue_bytes(768) + payload)
    udi = segs[2]
    assert udi["size"] == 0 and udi["crc"] == zlib.crc32(b"\xff\x8c\x80")
    # our hand-built segment helper reproduces the writer byte for byte
    assert data == codestream([segment(SORP, payload), segment(UDI, b"")], pih=segs[0]["payload"])


def test_payload_views_survive_buffer_types():
    data = container.write(valid_header(), {"SOZ": b"abc", "SORS": b"\x00" * 17})
    for buf in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        h, segs = container.parse(buf)
        assert segs == {"SOZ": b"abc", "SORS": b"\x00" * 17}
        assert all(type(v) is bytes for v in segs.values())


def test_large_payload():
    big = np.random.default_rng(0).bytes(3_000_000)
    h, segs = container.parse(container.write(valid_header(), {"SORP": big}))
    assert segs["SORP"] == big


# --------------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------------
def test_max_pixels_limit():
    h = valid_header(width=65535, height=65535)
    data = container.write(h, {})                     # the writer has no pixel limit
    e = parse_error(data, jpegai_fast.LimitError, field="width*height")
    assert "65535" in str(e) or "4294836225" in str(e)
    h2, _ = container.parse(data, max_pixels=65535 * 65535)
    assert (h2.width, h2.height) == (65535, 65535)
    small = container.write(valid_header(width=100, height=30), {})
    container.parse(small, max_pixels=3000)
    parse_error(small, jpegai_fast.LimitError, field="width*height", max_pixels=2999)
    parse_error(small, jpegai_fast.LimitError, field="width*height", max_pixels=0)


def test_limit_error_is_not_bitstream_error():
    data = container.write(valid_header(width=20000, height=20000), {})
    with pytest.raises(jpegai_fast.LimitError) as info:
        container.parse(data)
    assert not isinstance(info.value, jpegai_fast.BitstreamError)
    assert isinstance(info.value, ValueError)


def test_writer_rejects_invalid_headers():
    for fields in [dict(width=0), dict(height=0), dict(bit_depth=10), dict(chroma_format=0),
                   dict(chroma_format=2), dict(colour_transform=2), dict(operating_point=3),
                   dict(gain_log_luma=8192), dict(gain_log_chroma=-8192), dict(latent_channels_luma=0),
                   dict(latent_channels_chroma=1025), dict(coded_channels_luma=161),
                   dict(coded_channels_chroma=97), dict(tile_size=100), dict(tile_size=64, tile_overlap=8),
                   dict(tile_size=64, tile_overlap=64), dict(tile_overlap=16), dict(tile_size=65552)]:
        with pytest.raises(ValueError) as info:
            container.write(valid_header(**fields), {})
        assert not isinstance(info.value, jpegai_fast.BitstreamError), fields
    for fields in [dict(width=65536), dict(height=70000)]:
        with pytest.raises(ValueError):   # LimitError (a limit of the format) or plain ValueError
            container.write(valid_header(**fields), {})


def test_monochrome_header():
    """chroma_format 0 (4:0:0): no chroma fields (coded_channels_chroma = gain_log_chroma = 0), no SORS."""
    h = valid_header(chroma_format=0, coded_channels_chroma=0)
    h2, segs = container.parse(container.write(h, {"SOZ": b"z", "SORP": b"r"}))
    assert h2.chroma_format == 0 and header_dict(h2) == header_dict(h) and sorted(segs) == ["SORP", "SOZ"]
    for fields in [dict(coded_channels_chroma=1), dict(coded_channels_chroma=0, gain_log_chroma=3)]:
        with pytest.raises(ValueError, match="chroma_format"):
            container.write(valid_header(chroma_format=0, **fields), {})
    with pytest.raises(ValueError, match="SORS"):
        container.write(h, {"SOZ": b"z", "SORS": b""})
    mono = pih_payload(chroma_format=0, coded_chroma=0)
    parse_error(codestream([segment(SOZ, b"z"), segment(SORS, b"")], pih=mono), field="SORS")
    parse_error(codestream([], pih=pih_payload(chroma_format=0, coded_chroma=0, gain_chroma=-1)), field="chroma_format")
    parse_error(codestream([], pih=pih_payload(chroma_format=0, coded_chroma=96)), field="chroma_format")
    for bad in (2, 3):
        parse_error(codestream([], pih=pih_payload(chroma_format=bad, coded_chroma=0)), field="chroma_format")
        with pytest.raises(ValueError):
            container.write(valid_header(chroma_format=bad, coded_channels_chroma=0), {})


def test_writer_rejects_unknown_segments():
    with pytest.raises(ValueError):
        container.write(valid_header(), {"PIH": b""})
    with pytest.raises(ValueError):
        container.write(valid_header(), {"XYZ": b""})
    from jpegai_fast import _core
    for segs in ([(0xFF82, b"")], [(0xFF80, b"")], [(0x1234, b"")], [(SOZ, b""), (SOZ, b"x")]):
        with pytest.raises(ValueError):
            _core.write_codestream(valid_header(), segs)


# --------------------------------------------------------------------------------------------------
# Hostile constructions (each valid in every respect except the one under test)
# --------------------------------------------------------------------------------------------------
GOOD_PIH = pih_payload()


def test_handbuilt_stream_parses():
    h, segs = container.parse(codestream([segment(SOZ, b"z"), segment(SORP, b"r")], pih=GOOD_PIH))
    assert (h.width, h.height) == (64, 48) and segs == {"SOZ": b"z", "SORP": b"r"}


@pytest.mark.parametrize("data,field", [
    (b"", "SOC"), (b"\xff", "SOC"), (b"\x00\x80", "SOC"), (b"\xff\x81", "SOC"),
    (b"\xff\x80", "EOC"), (b"\xff\x80\xff", "EOC"),
    (b"\xff\x80\xff\x81", "PIH"),                                   # no picture header
])
def test_framing_errors(data, field):
    parse_error(data, field=field)


def test_missing_eoc():
    parse_error(codestream([segment(SORP, b"abc")], pih=GOOD_PIH, eoc=False), field="EOC")
    parse_error(codestream([], pih=GOOD_PIH, eoc=False), field="EOC")


def test_trailing_data():
    for trailing in (b"\x00", b"\xff\x81", b"\xff\x80", segment(UDI, b"x")):
        parse_error(codestream([], pih=GOOD_PIH, trailing=trailing), field="EOC")


@pytest.mark.parametrize("marker", [0xFF83, 0xFF8B, 0xFF8F, 0xFF00, 0x0000, 0xFFFF, SOC])
def test_unknown_markers(marker):
    parse_error(codestream([segment(marker, b"abc")], pih=GOOD_PIH), field="marker")


def test_duplicate_segments():
    for m, name in [(SOZ, "SOZ"), (SORP, "SORP"), (SORS, "SORS"), (UDI, "UDI")]:
        parse_error(codestream([segment(m, b"a"), segment(m, b"b")], pih=GOOD_PIH), field=name)
        parse_error(codestream([segment(m, b"a"), segment(SORP if m != SORP else SOZ, b""),
                                segment(m, b"a")], pih=GOOD_PIH), field=name)
    parse_error(codestream([segment(PIH, GOOD_PIH)], pih=GOOD_PIH), field="PIH")


def test_segment_before_header():
    data = b"\xff\x80" + segment(SORP, b"x") + segment(PIH, GOOD_PIH) + b"\xff\x81"
    parse_error(data, field="SORP")


def test_crc_mismatch():
    good = segment(SORP, b"payload")
    crc = int.from_bytes(good[-4:], "big")
    for bad in (crc ^ 1, crc ^ 0x80000000, 0, 0xFFFFFFFF):
        parse_error(codestream([segment(SORP, b"payload", crc=bad)], pih=GOOD_PIH), field="SORP")
    parse_error(b"\xff\x80" + segment(PIH, GOOD_PIH, crc=0) + b"\xff\x81", field="PIH")


@pytest.mark.parametrize("size", [8, 100, 2**20, 2**31, 2**32 - 2])
def test_huge_declared_sizes(size):
    data = codestream([segment(SORP, b"payload", size=size)], pih=GOOD_PIH)
    parse_error(data, field="SORP")


@pytest.mark.parametrize("size_bytes", [
    b"\x00\x00\x00\x00\x00",        # 40 leading zeros: prefix too long
    b"\x00\x00\x00\x00",            # truncated inside the prefix
    b"\x00\x00\x00\x01\xff\xff\xff\xff",  # 31 zeros + 1: 2^32 - 1 ... needs 31 suffix bits
    b"\x81",                        # ue = 0, but padding bits non-zero
    b"",
])
def test_malformed_size_fields(size_bytes):
    data = b"\xff\x80" + segment(PIH, GOOD_PIH) + b"\xff\x89" + size_bytes
    parse_error(data, field="SORP")
    parse_error(data + b"\x00" * 8 + b"\xff\x81", field=None)


def test_truncated_segment():
    seg = segment(SORS, b"0123456789")
    for cut in range(2, len(seg)):
        data = b"\xff\x80" + segment(PIH, GOOD_PIH) + seg[:cut]
        parse_error(data)


@pytest.mark.parametrize("fields,field", [
    (dict(version=0), "format_version"), (dict(version=2), "format_version"),
    (dict(version=255), "format_version"),
    (dict(bit_depth_minus8=2), "bit_depth"), (dict(chroma_format=0), "chroma_format"),
    (dict(chroma_format=3), "chroma_format"), (dict(colour_transform=2), "colour_transform"),
    (dict(operating_point=3), "operating_point"),
    (dict(gain_luma=8192), "gain_log_luma"), (dict(gain_chroma=-9000), "gain_log_chroma"),
    (dict(gain_luma=2**31 - 1), "gain_log_luma"),
    (dict(latent_luma=0), "latent_channels_luma"), (dict(latent_chroma=1025), "latent_channels_chroma"),
    (dict(latent_luma=2**32 - 2), "latent_channels_luma"),
    (dict(coded_luma=161), "coded_channels_luma"), (dict(coded_chroma=97), "coded_channels_chroma"),
    (dict(coded_chroma=5000), "coded_channels_chroma"),
    (dict(tile16=4097), "tile_size"), (dict(tile16=4, overlap16=4), "tile_overlap"),
    (dict(tile16=0, overlap16=1), "tile_overlap"), (dict(overlap16=4097), "tile_overlap"),
    (dict(width_minus1=65535), "width"), (dict(height_minus1=2**32 - 2), "height"),
    (dict(extra=b"\x00"), "PIH"),
])
def test_bad_header_fields(fields, field):
    parse_error(codestream([], pih=pih_payload(**fields)), field=field)


def test_hostile_picture_size_is_limit_error_with_field():
    data = codestream([], pih=pih_payload(width=65535, height=65535))
    parse_error(data, jpegai_fast.LimitError, field="width*height")
    data = codestream([], pih=pih_payload(width=65535, height=1025))      # 67,173,375 > 2^26 (the default)
    parse_error(data, jpegai_fast.LimitError, field="width*height")
    h, _ = container.parse(codestream([], pih=pih_payload(width=65535, height=1024)))  # < 2^26
    assert h.height == 1024
    h, _ = container.parse(codestream([], pih=pih_payload(width=65535, height=4096)), max_pixels=1 << 28)
    assert h.height == 4096


def test_header_padding_must_be_zero():
    payload = bytearray(pih_payload())
    payload[-1] |= 1            # the last byte holds padding bits: make one non-zero
    parse_error(codestream([], pih=bytes(payload)), field="PIH")


def test_truncated_header_payload():
    for cut in range(len(GOOD_PIH)):
        parse_error(codestream([], pih=GOOD_PIH[:cut]))


def test_every_error_is_ours_and_named():
    cases = [b"", b"\xff\x80", codestream([segment(0xFF99, b"")], pih=GOOD_PIH),
             codestream([], pih=pih_payload(width=65535, height=65535))]
    for data in cases:
        with pytest.raises(OUR_ERRORS) as info:
            container.parse(data)
        assert info.value.field
