"""The README's main job: the entropy-coding demo on a real photo, and the CLI entry point."""
import pytest

from jpegai_fast import __main__ as cli
from jpegai_fast import demo

pytest.importorskip("skimage")


def test_demo_round_trip_on_a_real_photo():
    r = demo.run("astronaut", step=12.0, substreams=8, threads=0)
    assert r["exact"]
    assert r["symbols"] == 512 * 512
    # the rANS payload is within 1 % of its ideal size, and the picture is a real reconstruction
    assert r["payload_bytes"] <= 1.01 * r["ideal_bytes"]
    assert 30.0 < r["psnr_y_db"] < 60.0
    assert 0.2 < r["bpp"] < 4.0


def test_cli_demo_prints_sizes(capsys):
    assert cli.main(["demo", "--image", "coffee", "--step", "20"]) == 0
    out = capsys.readouterr().out
    assert "round trip exact" in out and "ideal" in out and "M symbols/s" in out


def test_cli_usage():
    assert cli.main([]) == 2
    assert cli.main(["--help"]) == 0
