"""The metadata segment MDS (docs/bitstream.md §1.1): EXIF, ICC profile and XMP through the container, the
encoder/decoder, the Pillow plugin and the CLI; hostile payloads raise BitstreamError."""
from __future__ import annotations

import io
import pathlib
import struct

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast import __main__ as cli
from jpegai_fast import _core, container, images
from streamutil import codestream, pih_payload, segment, valid_header, walk_codestream

MDS = 0xFF8D
MIB16 = 1 << 24
MODELS = sorted((pathlib.Path(jpegai_fast.__file__).parent / "models").glob("*/model.bin"))
needs_model = pytest.mark.skipif(not MODELS, reason="no exported model in the package")

XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff='
       b'"http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6" tiff:Make="Cam"/></rdf:RDF></x:xmpmeta>'
       b'<?xpacket end="w"?>')


def _icc() -> bytes:
    try:
        from PIL import ImageCms
        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except (ImportError, OSError):  # Pillow without littlecms: any bytes do (the codec stores them unchanged)
        return b"\x00\x00\x02\x0cICC profile stand-in" * 20


def _exif(orientation: int | None = None) -> bytes:
    e = Image.Exif()
    e[0x010F] = "Camera maker"
    e[0x0131] = "jpegai_fast test"
    if orientation is not None:
        e[0x0112] = orientation
    return e.tobytes()


def entry(kind: int, payload: bytes, length: int | None = None) -> bytes:
    return bytes([kind]) + struct.pack(">I", len(payload) if length is None else length) + payload


def stream_with_mds(payload: bytes) -> bytes:
    return codestream([segment(MDS, payload)], pih=pih_payload())


def mds_error(payload: bytes) -> jpegai_fast.BitstreamError:
    """The payload is refused alone, inside a codestream, and by the writer (as ValueError)."""
    with pytest.raises(jpegai_fast.BitstreamError) as info:
        _core.parse_metadata(payload)
    assert info.value.field == "MDS"
    with pytest.raises(jpegai_fast.BitstreamError) as info2:
        container.parse(stream_with_mds(payload))
    assert info2.value.field == "MDS"
    with pytest.raises(ValueError, match="MDS"):
        container.write(valid_header(), {"MDS": payload})
    return info.value


# --------------------------------------------------------------------------------------------------
# The segment syntax
# --------------------------------------------------------------------------------------------------
def test_payload_layout_and_round_trip():
    md = {"exif": _exif(), "icc_profile": _icc(), "xmp": XMP}
    payload = container.write_metadata(md)
    assert payload == entry(1, md["exif"]) + entry(2, md["icc_profile"]) + entry(3, XMP)
    assert container.parse_metadata(payload) == md
    data = container.write(valid_header(), {"MDS": payload, "UDI": b"opaque"})
    assert container.read_metadata(data) == md
    assert container.parse(data)[1]["MDS"] == payload
    # any order on reading; missing, None and empty entries are left out on writing
    assert container.parse_metadata(entry(3, b"x") + entry(1, b"e")) == {"xmp": b"x", "exif": b"e"}
    assert container.write_metadata({"exif": b"", "icc_profile": None}) is None
    assert container.write_metadata({"xmp": XMP.decode()}) == entry(3, XMP)  # str: UTF-8
    assert container.read_metadata(container.write(valid_header(), {})) == {}


def test_entry_size_limit():
    assert container.MAX_METADATA_ENTRY == MIB16
    big = bytes(MIB16)
    assert _core.parse_metadata(entry(2, big)) == {2: big}  # exactly 16 MiB: accepted
    with pytest.raises(ValueError, match="16 MiB"):
        container.write_metadata({"icc_profile": big + b"x"})
    with pytest.raises(ValueError, match="16 MiB"):
        _core.write_metadata([(2, big + b"x")])
    mds_error(entry(2, b"x" * 16, length=MIB16 + 1))          # declared above 16 MiB
    mds_error(entry(1, b"", length=0xFFFFFFFF))


@pytest.mark.parametrize("payload", [
    b"",                                        # no entry
    b"\x01", b"\x01\x00\x00\x00",               # entry header truncated
    entry(1, b"abc", length=4),                 # entry longer than the payload
    entry(1, b"abc", length=1 << 20),
    entry(1, b"abc") + b"\x02\x00",             # second entry header truncated
    entry(1, b"abc") + entry(2, b"xyz", length=9),
    entry(1, b""),                              # empty entry
    entry(0, b"abc"), entry(4, b"abc"), entry(255, b"abc"),  # unknown types are refused, not skipped
    entry(1, b"a") + entry(1, b"b"),            # duplicates
    entry(3, b"a") + entry(2, b"b") + entry(3, b"a"),
])
def test_hostile_payloads(payload):
    mds_error(payload)


def test_writer_refuses_bad_entries():
    for entries in ([], [(1, b"a"), (1, b"b")], [(0, b"a")], [(4, b"a")], [(1, b"")], [(-1, b"a")], [(256, b"a")]):
        with pytest.raises(ValueError):
            _core.write_metadata(entries)
    with pytest.raises(ValueError, match="unknown metadata"):
        container.write_metadata({"exif": b"e", "gps": b"g"})
    with pytest.raises(TypeError):
        container.write_metadata({"exif": 5})


def test_duplicate_segment_and_damaged_crc():
    good = segment(MDS, entry(1, b"e"))
    with pytest.raises(jpegai_fast.BitstreamError, match="duplicate"):
        container.parse(codestream([good, good], pih=pih_payload()))
    with pytest.raises(jpegai_fast.BitstreamError) as info:
        container.parse(codestream([segment(MDS, entry(1, b"e"), crc=0)], pih=pih_payload()))
    assert info.value.field == "MDS"


def test_mutated_payloads_never_crash():
    rng = np.random.default_rng(14)
    base = bytearray(entry(1, b"exif" * 10) + entry(2, b"icc" * 7) + entry(3, b"xmp" * 5))
    for _ in range(3000):
        b = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(b)))
            b[i] = int(rng.integers(256)) if rng.random() < 0.7 else b[i] ^ (1 << int(rng.integers(8)))
        if rng.random() < 0.3:
            b = b[:int(rng.integers(len(b) + 1))]
        try:
            got = _core.parse_metadata(bytes(b))
        except jpegai_fast.BitstreamError as e:
            assert e.field == "MDS"
            continue
        assert set(got) <= {1, 2, 3} and sum(5 + len(v) for v in got.values()) == len(b)


# --------------------------------------------------------------------------------------------------
# Orientation reset
# --------------------------------------------------------------------------------------------------
def _le_exif(orientation: int) -> bytes:
    """A little-endian TIFF EXIF block (Pillow writes big-endian) with IFD0 = {Make, Orientation}."""
    make = b"Cam\x00"
    ifd = struct.pack("<H", 2) + struct.pack("<HHI4s", 0x010F, 2, 4, make) \
        + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def test_orientation_reset_keeps_every_other_byte():
    for raw in (_exif(6), b"Exif\x00\x00" + _le_exif(8), _le_exif(3)):
        src = Image.new("RGB", (4, 2))  # (a new one each time: Pillow caches getexif())
        src.info["exif"] = raw
        assert images.exif_orientation(src) in (3, 6, 8)
        out = images.upright_metadata(src, {"exif": raw, "xmp": XMP})
        e = Image.Exif()
        e.load(out["exif"])
        assert e[0x0112] == 1 and e[0x010F].startswith("Cam")
        assert len(out["exif"]) == len(raw) and sum(a != b for a, b in zip(out["exif"], raw)) == 1
        assert b'tiff:Orientation="1"' in out["xmp"] and out["xmp"].replace(b'"1"', b'"6"', 1) == XMP
    src = Image.new("RGB", (4, 2))
    src.info["exif"] = _exif(1)
    assert images.upright_metadata(src, {"exif": _exif(6)})["exif"] == _exif(6)  # pixels not turned: kept
    for junk in (b"", b"Exif\x00\x00", b"II*\x00\xff\xff\xff\xff", b"MM\x00*\x00\x00\x00\x08\x00\x09"):
        assert images._exif_with_orientation_1(junk) == junk


# --------------------------------------------------------------------------------------------------
# Encoder, decoder, Pillow, CLI
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo():
    pytest.importorskip("onnxruntime")
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.chelsea()[60:124, 100:180])  # 64 x 80


@needs_model
def test_encode_decode_with_metadata(photo):
    md = {"exif": _exif(), "icc_profile": _icc(), "xmp": XMP}
    plain = jpegai_fast.encode(photo, rate_point=2)
    data = jpegai_fast.encode(photo, rate_point=2, **md)
    segs = container.parse(data)[1]
    assert {k: v for k, v in segs.items() if k != "MDS"} == container.parse(plain)[1]
    assert walk_codestream(data)[1]["marker"] == MDS  # right after the picture header
    rgb, got = jpegai_fast.decode(data, with_metadata=True)
    assert got == md
    np.testing.assert_array_equal(rgb, jpegai_fast.decode(plain))   # metadata never changes the pixels
    np.testing.assert_array_equal(rgb, jpegai_fast.decode(data))
    assert jpegai_fast.decode(plain, with_metadata=True)[1] == {}
    dec = jpegai_fast.Decoder()
    yuv, got = dec.decode(data, output="yuv", with_metadata=True)
    assert got == md and set(yuv) == {"Y", "UV"}
    # partial metadata, a grey picture, and bpp rate control (metadata on top of the picture's bytes)
    grey = np.ascontiguousarray(photo[..., 1])
    data = jpegai_fast.encode(grey, rate_point=2, icc_profile=md["icc_profile"])
    assert jpegai_fast.decode(data, with_metadata=True)[1] == {"icc_profile": md["icc_profile"]}
    with pytest.raises(ValueError, match="16 MiB"):
        jpegai_fast.encode(photo, rate_point=0, xmp=bytes(MIB16 + 1))


@needs_model
def test_damaged_metadata_in_a_picture_stream(photo):
    data = jpegai_fast.encode(photo, rate_point=1, exif=_exif())
    h, segs = container.parse(data)
    del segs["MDS"]  # the writer refuses a bad MDS payload: spliced in by hand
    bad = container.write(h, segs)[:-2] + segment(MDS, entry(1, b"e") + entry(1, b"f")) + b"\xff\x81"
    with pytest.raises(jpegai_fast.BitstreamError) as info:
        jpegai_fast.decode(bad)
    assert info.value.field == "MDS"
    with pytest.raises(OSError):  # Pillow: ImageFileError
        Image.open(io.BytesIO(bad))


@needs_model
def test_pillow_save_open_metadata(photo, tmp_path):
    md = {"exif": _exif(), "icc_profile": _icc(), "xmp": XMP}
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JAI", rate_point=2, **md)
    assert buf.getvalue() == jpegai_fast.encode(photo, rate_point=2, **md)
    buf.seek(0)
    with Image.open(buf) as im:
        assert {k: im.info.get(k) for k in md} == md
        im.load()
        assert im.getexif()[0x010F] == "Camera maker"
    # by default the image's own info; exif=b"" leaves EXIF out
    jpg = tmp_path / "cam.jpg"
    Image.fromarray(photo).save(jpg, exif=md["exif"], icc_profile=md["icc_profile"], xmp=XMP, quality=95)
    with Image.open(jpg) as src:
        src.save(tmp_path / "a.jai", rate_point=1)
        src.save(tmp_path / "b.jai", rate_point=1, exif=b"")
    with Image.open(tmp_path / "a.jai") as im:
        assert im.info["exif"] == md["exif"] and im.info["icc_profile"] == md["icc_profile"]
        # no EXIF orientation, so Pillow applied XMP's tiff:Orientation 6 (turned the picture) and it was reset
        assert im.info["xmp"] == XMP.replace(b'Orientation="6"', b'Orientation="1"')
        assert im.size == (photo.shape[0], photo.shape[1])
    with Image.open(tmp_path / "b.jai") as im:
        assert "exif" not in im.info and im.info["icc_profile"] == md["icc_profile"]


@needs_model
def test_orientation_applied_and_reset(photo, tmp_path):
    jpg = tmp_path / "rot.jpg"
    Image.fromarray(photo).save(jpg, exif=_exif(6), xmp=XMP, quality=95)
    with Image.open(jpg) as src:
        src.save(tmp_path / "rot.jai", rate_point=2)
    with Image.open(tmp_path / "rot.jai") as im:
        assert im.size == (photo.shape[0], photo.shape[1])  # coded upright (rotated)
        assert im.getexif()[0x0112] == 1 and im.getexif()[0x010F] == "Camera maker"
        assert b'tiff:Orientation="1"' in im.info["xmp"]
        im.load()
        # opening it again with exif_transpose does not turn it a second time
        assert Image.open(tmp_path / "rot.jai").size == im.size
        from PIL import ImageOps
        assert ImageOps.exif_transpose(im).size == im.size


@needs_model
def test_cli_keeps_and_strips_metadata(photo, tmp_path, capsys):
    md = {"exif": _exif(6), "icc_profile": _icc(), "xmp": XMP}
    src = tmp_path / "cam.jpg"
    Image.fromarray(photo).save(src, exif=md["exif"], icc_profile=md["icc_profile"], xmp=XMP, quality=95)
    assert cli.main(["encode", str(src), str(tmp_path / "keep.jai"), "--rate-point", "3"]) == 0
    assert cli.main(["encode", str(src), str(tmp_path / "strip.jai"), "--rate-point", "3", "--strip-metadata"]) == 0
    kept = container.read_metadata((tmp_path / "keep.jai").read_bytes())
    assert set(kept) == {"exif", "icc_profile", "xmp"} and kept["icc_profile"] == md["icc_profile"]
    e = Image.Exif()
    e.load(kept["exif"])
    assert e[0x0112] == 1 and e[0x010F] == "Camera maker"  # orientation applied to the pixels, so reset
    assert container.read_metadata((tmp_path / "strip.jai").read_bytes()) == {}
    keep_px = jpegai_fast.decode(tmp_path / "keep.jai")
    np.testing.assert_array_equal(keep_px, jpegai_fast.decode(tmp_path / "strip.jai"))
    assert keep_px.shape == (photo.shape[1], photo.shape[0], 3)
    # decode writes them into the output where the format takes them
    assert cli.main(["decode", str(tmp_path / "keep.jai"), str(tmp_path / "out.png")]) == 0
    with Image.open(tmp_path / "out.png") as im:
        assert im.info.get("icc_profile") == md["icc_profile"] and im.getexif()[0x010F] == "Camera maker"
    assert cli.main(["decode", str(tmp_path / "keep.jai"), str(tmp_path / "bare.png"), "--strip-metadata"]) == 0
    with Image.open(tmp_path / "bare.png") as im:
        assert "icc_profile" not in im.info
