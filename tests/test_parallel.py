"""encode_many / decode_many (a thread pool over one shared Encoder / Decoder), the Decoder shared by threads, and
the CLI's --jobs: input order, bit-identical to serial calls, errors naming the index."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import jpegai_fast
from jpegai_fast import parallel
from jpegai_fast.model import available_models
from shipped_model import requires_model

pytestmark = requires_model


@pytest.fixture(scope="module")
def pictures():
    skdata = pytest.importorskip("skimage.data")
    crops = [skdata.astronaut()[:96, :128], skdata.chelsea()[40:120, 60:172], skdata.coffee()[100:164, 200:280],
             skdata.astronaut()[200:248, 300:372], skdata.rocket()[100:180, 150:230]]
    return [np.ascontiguousarray(c) for c in crops]


@pytest.fixture(scope="module")
def serial(pictures):
    enc = jpegai_fast.Encoder(threads=1)
    streams = [enc.encode(p, rate_point=2) for p in pictures]
    dec = jpegai_fast.Decoder(threads=1)
    return streams, [dec.decode(s) for s in streams]


def test_encode_many_and_decode_many_equal_serial(pictures, serial):
    streams, decoded = serial
    got = jpegai_fast.encode_many(pictures, threads=3, rate_point=2)
    assert got == streams
    out = jpegai_fast.decode_many(got, threads=3)
    assert len(out) == len(decoded) and all(np.array_equal(a, b) for a, b in zip(out, decoded))
    # a generator input, more items than threads, one thread (the serial path of the same code)
    assert jpegai_fast.encode_many((p for p in pictures), threads=1, rate_point=2) == streams
    assert jpegai_fast.encode_many([], threads=2) == [] and jpegai_fast.decode_many([], threads=2) == []


def test_bpp_targets_pick_the_model_as_encode_does(pictures):
    want = [jpegai_fast.encode(p, bpp=0.6) for p in pictures[:3]]
    assert jpegai_fast.encode_many(pictures[:3], threads=2, bpp=0.6) == want


def test_errors_name_the_index(pictures, serial):
    bad = pictures[:2] + [np.zeros((8, 8), np.float32)] + pictures[2:]
    with pytest.raises(ValueError, match=r"^image 2: ") as info:
        jpegai_fast.encode_many(bad, threads=2, rate_point=2)
    assert info.value.index == 2
    streams = list(serial[0])
    streams[3] = streams[3][:40]
    with pytest.raises(jpegai_fast.BitstreamError, match=r"^stream 3: ") as info2:
        jpegai_fast.decode_many(streams, threads=2)
    assert info2.value.index == 3 and info2.value.field  # the type and field are kept
    got = list(parallel.imap(jpegai_fast.decode, streams, 2, return_exceptions=True))
    assert isinstance(got[3], jpegai_fast.BitstreamError) and all(isinstance(g, np.ndarray) for i, g in
                                                                   enumerate(got) if i != 3)


def test_imap_keeps_order_and_bounds_the_work_in_flight():
    active, peak, lock = [0], [0], threading.Lock()

    def work(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.002 * (7 - i % 7))  # later items finish first
        with lock:
            active[0] -= 1
        return i * i

    assert list(parallel.imap(work, range(40), 3)) == [i * i for i in range(40)]
    assert peak[0] <= 3
    with pytest.raises(ValueError, match="threads"):
        list(parallel.imap(work, range(3), -1))


def test_one_decoder_shared_by_threads_across_models(pictures):
    """One Decoder(model="default") used by several threads at once, with streams of different shipped models:
    each decode binds the stream's own model for its whole call (it used to read self.model again at synthesis,
    which another thread may have switched)."""
    names = [n for n in available_models() if n in ("vr_bop", "vm33")]
    if len(names) < 2:
        pytest.skip("needs two shipped models")
    streams = [jpegai_fast.Encoder(names[i % 2], threads=1).encode(p, rate_point=1) for i, p in
               enumerate(pictures)] * 3
    want = [jpegai_fast.Decoder(names[i % 2], threads=1).decode(s) for i, s in enumerate(streams[:len(pictures)])] * 3
    dec = jpegai_fast.Decoder(threads=1)
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(dec.decode, streams))
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_cli_jobs(tmp_path, pictures, capsys):
    from jpegai_fast.__main__ import main

    src = tmp_path / "in"
    src.mkdir()
    for i, p in enumerate(pictures):
        Image.fromarray(p).save(src / f"p{i}.png")
    (src / "p2.png").write_bytes(b"not a png")  # a failure in the middle
    assert main(["encode", str(src), str(tmp_path / "one"), "--rate-point", "2", "--json", "--keep-going"]) == 1
    serial_lines = capsys.readouterr().out.splitlines()
    assert main(["encode", str(src), str(tmp_path / "four"), "--rate-point", "2", "--json", "--keep-going",
                 "--jobs", "4"]) == 1
    lines = capsys.readouterr().out.splitlines()
    files = [json.loads(x).get("file") for x in lines[:-1]]
    assert files == [json.loads(x).get("file") for x in serial_lines[:-1]] == sorted(files)  # input order
    assert json.loads(lines[-1])["summary"] == {"files": 5, "ok": 4, "failed": 1}
    for i in (0, 1, 3, 4):
        assert (tmp_path / "four" / f"p{i}.jai").read_bytes() == (tmp_path / "one" / f"p{i}.jai").read_bytes()
    # without --keep-going: stops at the failure (files after it in input order are not reported)
    assert main(["encode", str(src), str(tmp_path / "stop"), "--rate-point", "2", "--json", "--jobs", "2"]) == 1
    stop = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [d.get("ok") for d in stop[:-1]] == [True, True, False] and stop[-1]["summary"]["failed"] == 1
    assert main(["decode", str(tmp_path / "four"), str(tmp_path / "png"), "--jobs", "3"]) == 0
    for i in (0, 1, 3, 4):
        with Image.open(tmp_path / "png" / f"p{i}.png") as im:
            np.testing.assert_array_equal(np.asarray(im), jpegai_fast.decode(tmp_path / "one" / f"p{i}.jai"))
    with pytest.raises(SystemExit):
        main(["decode", str(tmp_path / "four"), str(tmp_path / "png"), "--jobs", "-1"])
