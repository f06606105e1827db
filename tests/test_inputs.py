"""Real input files through the CLI / Pillow path (src/jpegai_fast/images.py): EXIF orientation applied,
16-bit and float pictures scaled (never clipped to white), alpha refused unless dropped on request."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast.images import to_rgb8
from shipped_model import requires_model


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[100:180, 150:270])  # 80 x 120


def test_exif_orientation_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        rgb = to_rgb8(im)
    assert rgb.shape == (120, 80, 3)  # upright: the stored 80 x 120 turned by 90 degrees
    assert abs(float(rgb.astype(float).mean()) - float(photo.astype(float).mean())) < 2.0


def test_16_bit_grey_is_scaled_not_clipped():
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    im = Image.fromarray(ramp)  # mode I;16
    rgb = to_rgb8(im)
    assert rgb.dtype == np.uint8 and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert abs(float(rgb.mean()) - float(ramp.mean()) / 257) < 1.0  # 16-bit mean, in 8-bit levels


def test_float_pictures_are_scaled():
    f = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    rgb = to_rgb8(Image.fromarray(f))  # mode F, 0..1
    assert rgb.min() == 0 and rgb.max() == 255


def test_alpha_is_refused_unless_dropped(photo):
    rgba = Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)]))
    with pytest.raises(ValueError, match="alpha='drop'"):
        to_rgb8(rgba)
    np.testing.assert_array_equal(to_rgb8(rgba, alpha="drop"), photo)


@requires_model
def test_pillow_save_uses_the_same_rules(photo, tmp_path):
    rgba = Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)]))
    with pytest.raises(ValueError, match="alpha"):
        rgba.save(tmp_path / "a.jai", rate_point=2)
    rgba.save(tmp_path / "b.jai", rate_point=2, alpha="drop")
    with Image.open(tmp_path / "b.jai") as im:
        assert im.size == (photo.shape[1], photo.shape[0])
    ramp = Image.fromarray((np.arange(64 * 96, dtype=np.uint32).reshape(64, 96) * 10).astype(np.uint16))
    ramp.save(tmp_path / "g.jai", rate_point=3)
    got = jpegai_fast.decode((tmp_path / "g.jai").read_bytes())
    assert abs(float(got.mean()) - float(np.asarray(ramp).mean()) / 257) < 4.0  # the "within 4 levels"


@requires_model
def test_cli_directory_keep_going_names_the_bad_file(photo, tmp_path, capsys):
    from jpegai_fast.__main__ import main

    src, out = tmp_path / "jai", tmp_path / "png"
    src.mkdir()
    good = jpegai_fast.encode(photo, rate_point=1)
    (src / "a.jai").write_bytes(good)
    (src / "b.jai").write_bytes(good[:40])  # truncated
    (src / "c.jai").write_bytes(good)
    assert main(["decode", str(src), str(out), "--keep-going"]) == 1
    captured = capsys.readouterr()
    assert "b.jai" in captured.err and "2 of 3 files done, 1 failed" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    # without --keep-going it stops at the bad file, still naming it
    out2 = tmp_path / "png2"
    assert main(["decode", str(src), str(out2)]) == 1 and "b.jai" in capsys.readouterr().err
    # --json: one line per file and a summary
    import json

    assert main(["decode", str(src), str(tmp_path / "png3"), "--keep-going", "--json"]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x.get("ok") for x in lines[:3]] == [True, False, True] and lines[-1]["summary"]["failed"] == 1


def test_cli_checks_options_and_paths_before_loading_a_model(tmp_path, capsys):
    from jpegai_fast.__main__ import main

    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    with pytest.raises(SystemExit):
        main(["encode", str(img), str(tmp_path / "x.jai"), "--quality", "101"])
    assert "--quality must be in 0 .. 100" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["encode", str(img), str(tmp_path / "x.jai"), "--rate-point", "8"])
    assert "--rate-point must be in 0 .. 7" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="does not exist"):
        main(["encode", str(img), str(tmp_path / "missing" / "x.jai")])


@requires_model
def test_unreachable_bpp_target_warns_or_raises():
    tiny = np.full((1, 1, 3), 128, np.uint8)
    with pytest.warns(jpegai_fast.RateWarning, match="cannot be reached"):
        data = jpegai_fast.encode(tiny, bpp=1.0)
    assert 8 * len(data) > 1.0  # the smallest stream, as the warning says
    with pytest.raises(jpegai_fast.RateError) as info:
        jpegai_fast.encode(tiny, bpp=1.0, strict=True)
    assert info.value.field == "bpp"


def test_palette_and_cmyk_are_converted_with_a_note(photo, tmp_path):
    """Modes the codec does not take directly are converted to RGB by Pillow, and the user is told (a
    ConversionWarning naming the mode); RGB and grey pictures pass without one."""
    import warnings

    from jpegai_fast.images import to_array

    rgb = Image.fromarray(photo)
    for mode in ("P", "CMYK", "YCbCr", "LAB"):
        with pytest.warns(jpegai_fast.ConversionWarning, match=mode):
            a = to_array(rgb.convert(mode))
        assert a.shape == photo.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(to_array(rgb.convert("P", palette=Image.Palette.WEB).convert("RGB")),
                                  np.asarray(rgb.convert("P", palette=Image.Palette.WEB).convert("RGB")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_array(rgb)
        to_array(rgb.convert("L"))
    path = tmp_path / "cmyk.tif"
    rgb.convert("CMYK").save(path)
    from jpegai_fast.__main__ import main

    with pytest.warns(jpegai_fast.ConversionWarning, match="CMYK"):
        assert main(["encode", str(path), str(tmp_path / "cmyk.jai"), "--rate-point", "1"]) == 0
