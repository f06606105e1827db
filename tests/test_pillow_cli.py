"""Pillow plugin (registered on import) and the encode / decode / info / roundtrip CLI."""
from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast import __main__ as cli

MODELS = sorted((pathlib.Path(jpegai_fast.__file__).parent / "models").glob("*/model.bin"))
pytestmark = pytest.mark.skipif(not MODELS, reason="no exported model in the package")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.chelsea()[60:140, 100:196])  # 80 x 96


def test_pillow_save_and_open(tmp_path, photo):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JAI", rate_point=2)
    assert buf.getvalue() == jpegai_fast.encode(photo, rate_point=2)
    quality = io.BytesIO()  # quality 0..100: a knot of the default ladder is its model's rate point exactly
    q, name, r = jpegai_fast.encoder.default_ladder("bop")[2]
    Image.fromarray(photo).save(quality, format="JAI", quality=q)
    assert quality.getvalue() == jpegai_fast.encode(photo, model=name, rate_point=r)
    buf.seek(0)
    with Image.open(buf) as im:
        assert im.format == "JAI" and im.size == (96, 80) and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), jpegai_fast.decode(buf.getvalue()))
    path = tmp_path / "x.jai"
    Image.fromarray(photo).save(path, bpp=0.6)  # format from the extension
    assert 8 * path.stat().st_size / (96 * 80) <= 0.6
    with Image.open(path) as im:
        assert np.asarray(im).shape == photo.shape


def test_pillow_rejects_damaged_and_ignores_other_files(tmp_path, photo):
    data = jpegai_fast.encode(photo, rate_point=0)
    with pytest.raises(OSError):  # Pillow's convention: ImageFileError (ours) or UnidentifiedImageError
        Image.open(io.BytesIO(data[:10])).load()
    png = tmp_path / "x.png"
    Image.fromarray(photo).save(png)
    with Image.open(png) as im:
        assert im.format == "PNG"


def test_cli_encode_decode_info(tmp_path, photo, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo).save(src / "a.png")
    Image.fromarray(photo[:41, :77]).save(src / "b.png")
    assert cli.main(["encode", str(src / "a.png"), str(tmp_path / "a.jai"), "--bpp", "0.6"]) == 0
    assert 8 * (tmp_path / "a.jai").stat().st_size / (96 * 80) <= 0.6
    assert cli.main(["decode", str(tmp_path / "a.jai"), str(tmp_path / "a.png")]) == 0
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (96, 80)
    # directories, with a progress bar
    assert cli.main(["encode", str(src), str(tmp_path / "jai"), "--quality", "28", "--op", "sop"]) == 0
    assert sorted(p.name for p in (tmp_path / "jai").iterdir()) == ["a.jai", "b.jai"]
    assert cli.main(["decode", str(tmp_path / "jai"), str(tmp_path / "png"), "--op", "header"]) == 0
    with Image.open(tmp_path / "png" / "b.png") as im:
        assert im.size == (77, 41)
    capsys.readouterr()
    assert cli.main(["info", str(tmp_path / "jai"), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [d["operating_point_name"] for d in lines] == ["sop", "sop"] and lines[1]["width"] == 77
    assert cli.main(["info", str(tmp_path / "a.jai"), "--timing"]) == 0
    out = capsys.readouterr().out
    assert "synthesis" in out and "colour" in out and "bpp" in out
    stage_lines = [x.split() for x in out.splitlines() if x.strip().endswith("%")]
    from jpegai_fast.decoder import STAGES

    assert [" ".join(x[:-4]) for x in stage_lines] == list(STAGES)  # "name  12.34 ms  5.6 %"
    assert 99.5 <= sum(float(x[-2]) for x in stage_lines) <= 100.5  # "other" closes the gap; 0.1 % rounding each
    assert cli.main(["info", str(tmp_path / "a.jai"), "--timing", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["timing_ms"]) == {*STAGES, "total"} and set(d["timing_percent"]) == set(STAGES)


def test_cli_roundtrip_and_errors(tmp_path, photo, capsys):
    Image.fromarray(photo).save(tmp_path / "p.png")
    assert cli.main(["roundtrip", str(tmp_path / "p.png"), "--bpp", "0.6", "--out", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    assert "bpp" in out and "PSNR" in out and "decode" in out
    (tmp_path / "bad.jai").write_bytes(b"\xff\x80\xff\x82garbage")
    assert cli.main(["decode", str(tmp_path / "bad.jai"), str(tmp_path / "bad.png")]) == 1
    assert "error" in capsys.readouterr().err
    assert cli.main(["frobnicate"]) == 2
