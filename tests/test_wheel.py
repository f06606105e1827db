"""The manylinux_2_28 wheel (tools/build_wheel.py), installed into a fresh venv, against the in-tree package.

    python -m pytest tests/test_wheel.py --run-slow                       # builds the wheel (incremental), ~2 min
    JPEGAI_WHEEL=dist/jpegai_fast-...whl python -m pytest tests/test_wheel.py --run-slow   # a wheel built before

The wheel is built with zig's clang against glibc 2.28 and a static libc++; the package under test in this
process is the ordinary (host compiler) build.  In a venv made here (no system site-packages) the wheel is
installed with its dependencies from the registry (onnxruntime pinned to this process's version, so that the
float graphs are the same and only the extension differs), and there

* the SIMD level the extension detects (``_core.cpu_features()``) must be the same;
* an encode/decode round trip of a made image (integer arithmetic only, no scikit-image) at a vm33 rate and a
  vr_bop rate, BOP and SOP synthesis, the latents ŷ and the forced-baseline (JPEGAI_FAST_SIMD=scalar) decode,
  must give the same bytes as here;
* tests/test_golden.py, tests/test_colour.py and tests/test_forced_baseline.py must pass (run from outside the
  repository, so that they import the installed wheel — checked).

Needs network access to the package registry (pip).  Marked slow: it is not part of the default run (measured
on the 2-core box: 1 min 55 s with an incremental wheel build, 42 s with JPEGAI_WHEEL; the first build of
all of csrc/ with zig adds about 4 min).  The fast test at the end checks the README's set-up commands against
.ci/run and pyproject.toml.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import venv

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def make_image(h: int = 120, w: int = 176) -> np.ndarray:
    """A deterministic RGB picture from integer arithmetic: ramps, a disc and a block texture."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = x * 255 // (w - 1)
    g = y * 255 // (h - 1)
    b = ((x // 8 + y // 8) % 2) * 120 + 60 + (x * y) % 23
    disc = (x - w // 3) ** 2 + (y - h // 2) ** 2 < (h // 4) ** 2
    r = np.where(disc, 230, r)
    g = np.where(disc, 40 + (x + y) % 32, g)
    return np.stack([r, g, b], -1).astype(np.uint8)


def roundtrip() -> dict[str, str]:
    """sha256 of every output of the round trip (streams, pictures, latents) of the imported jpegai_fast."""
    import jpegai_fast
    import jpegai_fast._core

    def sha(b: bytes) -> str:
        return hashlib.sha256(b).hexdigest()

    # the run-time SIMD dispatch must pick the same kernels (zig's compiler_rt alone reports no CPU feature)
    out = {"cpu_features": jpegai_fast._core.cpu_features()}
    img = make_image()
    for bpp in (0.12, 0.6):  # vm33, vr_bop
        data = jpegai_fast.encode(img, bpp=bpp)
        out[f"{bpp}/stream"] = sha(data)
        out[f"{bpp}/rgb_bop"] = sha(jpegai_fast.decode(data, threads=1).tobytes())
        if bpp > 0.3:  # vr_bop has a SOP synthesis too (vm33: BOP only)
            out[f"{bpp}/rgb_sop"] = sha(jpegai_fast.decode(data, operating_point="sop").tobytes())
        lat = jpegai_fast.Decoder(threads=2).decode_latents(data)
        for key in ("y_hat", "sigma", "index", "z", "residual"):
            for comp, a in sorted(lat[key].items()):
                out[f"{bpp}/{key}/{comp}"] = sha(np.ascontiguousarray(a).tobytes())
        baseline = subprocess.run(
            [sys.executable, "-c", "import sys, jpegai_fast; sys.stdout.buffer.write("
             "jpegai_fast.decode(sys.stdin.buffer.read()).tobytes())"],
            input=data, capture_output=True, check=True, env={**os.environ, "JPEGAI_FAST_SIMD": "scalar"})
        out[f"{bpp}/rgb_bop_scalar"] = sha(baseline.stdout)
    return out


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    given = os.environ.get("JPEGAI_WHEEL")
    if given:
        return pathlib.Path(given).resolve()
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, ROOT / "tools" / "build_wheel.py", "--out", out], cwd=ROOT)
    (whl,) = out.glob("jpegai_fast-*-manylinux_2_28_x86_64.whl")
    return whl


@pytest.fixture(scope="module")
def wheel_venv(wheel, tmp_path_factory) -> pathlib.Path:
    import onnxruntime

    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", wheel,
         f"onnxruntime=={onnxruntime.__version__}", "pytest>=7"])
    return py


@pytest.mark.slow
def test_wheel_is_manylinux_2_28(wheel):
    assert wheel.name.endswith("-manylinux_2_28_x86_64.whl")
    r = run([sys.executable, ROOT / "tools" / "build_wheel.py", "--check", wheel], cwd=ROOT)
    assert "SYMBOLS OK" in r.stdout


@pytest.mark.slow
def test_wheel_roundtrip_matches_in_tree_build(wheel_venv, tmp_path):
    where = run([wheel_venv, "-c", "import jpegai_fast._core as c; print(c.__file__)"], cwd=tmp_path).stdout
    assert where.strip().startswith(str(wheel_venv.parent.parent)), where  # the wheel, not this tree
    got = run([wheel_venv, pathlib.Path(__file__).resolve(), "--roundtrip"], cwd=tmp_path).stdout
    got = json.loads(got)
    want = roundtrip()
    assert len(want) > 20 and sorted(got) == sorted(want)
    assert {k: v for k, v in got.items() if want[k] != v} == {}


@pytest.mark.slow
def test_wheel_passes_golden_colour_and_baseline_tests(wheel_venv, tmp_path):
    tests = [ROOT / "tests" / f for f in ("test_golden.py", "test_colour.py", "test_forced_baseline.py")]
    code = ("import sys, pytest, jpegai_fast._core as c; "
            f"assert c.__file__.startswith({str(wheel_venv.parent.parent)!r}), c.__file__; "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]))")
    r = run([wheel_venv, "-c", code, *tests], cwd=tmp_path)
    assert " passed" in r.stdout and " failed" not in r.stdout, r.stdout


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_setup_commands_match_ci_and_build_requires():
    """.ci/run runs exactly README command 2; both commands first install every build requirement (by name),
    since --no-build-isolation builds with what the environment has."""
    tomllib = pytest.importorskip("tomllib")
    cmds = _readme_commands()
    assert len(cmds) == 2, cmds
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert cmds[1] in ci, "the README's test command and .ci/run differ"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    names = {r.split(">")[0].split("=")[0].split("<")[0].split("~")[0].strip().lower() for r in requires}
    for cmd in cmds:
        first, rest = cmd.split(" && ", 1)
        assert rest.startswith("pip install --no-build-isolation "), cmd
        installed = {w.strip('"').split(">")[0].split("=")[0].lower() for w in first.split()[2:]}
        assert first.startswith("pip install ") and names <= installed, (names, installed)


if __name__ == "__main__":
    if sys.argv[1:] == ["--roundtrip"]:  # run by the test inside the wheel's venv
        print(json.dumps(roundtrip()))
