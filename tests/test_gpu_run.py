"""training.gpu_run, end to end on the CPU: the command a borrowed GPU machine runs blind must work here."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from shipped_model import ROOT

torch = pytest.importorskip("torch")
CHECKPOINT = ROOT / "training" / "checkpoints" / "vm33.pt"
pytestmark = pytest.mark.skipif(not CHECKPOINT.exists(), reason="no vm33 checkpoint committed")


def _photos(folder, size=288):
    """Crops of the skimage photos as training JPEGs (the pool's format: q95 4:4:4)."""
    from PIL import Image
    from skimage import data
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        im = getattr(data, name)()
        Image.fromarray(im[:size, :size]).save(folder / f"skimage__{name}__0__y0x0.jpg", quality=95, subsampling=0)
    return folder


def test_prepare_respects_the_budget(tmp_path):
    pool = _photos(tmp_path / "pool")
    out = tmp_path / "subset"
    budget = 60_000
    res = subprocess.run([sys.executable, "-m", "training.gpu_run", "--prepare", "--pool", str(pool),
                          "--data", str(out), "--budget-mb", str(budget / 2**20)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    sizes = [f.stat().st_size for f in out.glob("*.jpg")]
    assert 1 <= len(sizes) < 4 and sum(sizes) <= budget


HI_ANALYSIS = ("luma_analysis_hi.", "chroma_analysis_hi.")


@pytest.mark.parametrize("train_only", ["all", "analysis-hi", "analysis-lo"])
def test_gpu_run_on_cpu(tmp_path, train_only):
    data = _photos(tmp_path / "data")
    out = tmp_path / "out"
    start = torch.load(CHECKPOINT, map_location="cpu")
    before = start["meta"]["steps"]["bop"]
    res = subprocess.run([sys.executable, "-m", "training.gpu_run", "--device", "cpu", "--minutes", "1",
                          "--out", str(out), "--data", str(data), "--batch", "2", "--crop", "128",
                          "--threads", "1", "--train-only", train_only], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    smoke = json.loads((out / "smoke.json").read_text())
    assert smoke["finite"] and smoke["device"] == "cpu"
    ckpt = torch.load(out / "vm33.pt", map_location="cpu")
    assert ckpt["meta"]["steps"]["bop"] > before
    assert (out / "vm33.pt").stat().st_size < 16 * 2**20
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (out / "vm33.opt.pt").exists()
    rows = (out / "vm33.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    tag = {"all": "mix", "analysis-hi": "mix hi-analysis", "analysis-lo": "mix lo-analysis"}[train_only]
    mix = [dict(zip(header, r.split("\t"))) for r in rows[1:] if f"\t{tag}\t" in r]
    assert mix and all(float(r["lr"]) > 0 and np.isfinite(float(r["loss"])) for r in mix)
    if train_only != "all":  # that analysis moved, nothing else did
        moved = {k for k, v in ckpt["state_dict"].items() if not torch.equal(v, start["state_dict"][k])}
        which = HI_ANALYSIS if train_only == "analysis-hi" else ("luma_analysis.", "chroma_analysis.")
        assert moved and all(k.startswith(which) for k in moved), sorted(moved)[:5]
    # the committed checkpoint is untouched (the run works on its own copy)
    assert torch.load(CHECKPOINT, map_location="cpu")["meta"]["steps"]["bop"] == before
