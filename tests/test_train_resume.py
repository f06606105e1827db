"""training.train's resume: the float32 local state (checkpoints/<name>.opt.pt) is preferred over the committed
float16 file only while it is the same weights; a committed file edited afterwards (a graft of two checkpoints,
as in training/README.md) wins, with a fresh optimizer."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training import train  # noqa: E402


def _fresh():
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 2)
    return model, torch.optim.Adam(model.parameters())


def test_resume_takes_an_edited_committed_checkpoint(tmp_path):
    model, opt = _fresh()
    with torch.no_grad():
        model.weight.add_(0.123456789)  # not exact in float16: the local state is the finer one
    meta = {"steps": {"bop": 5, "sop": 0}, "rate_lambdas": [0.1]}
    ckpt, opt_path = tmp_path / "m.pt", tmp_path / "m.opt.pt"
    train.save_checkpoint(model, opt, "bop", meta, ckpt, opt_path)

    m2, o2 = _fresh()
    _, how, kept = train.load_checkpoint(m2, o2, "bop", ckpt, opt_path, "cpu", [0.1])
    assert kept and "float32" in how and torch.equal(m2.weight, model.weight)

    edited = torch.load(ckpt)
    edited["state_dict"]["weight"] = torch.zeros(2, 3, dtype=torch.float16)  # e.g. a graft, same meta
    torch.save(edited, ckpt)
    m3, o3 = _fresh()
    _, how, kept = train.load_checkpoint(m3, o3, "bop", ckpt, opt_path, "cpu", [0.1])
    assert not kept and "differ" in how and torch.equal(m3.weight, torch.zeros(2, 3))
    assert torch.equal(m3.bias, model.bias.detach().half().float())


def test_same_weights():
    a = {"w": torch.tensor([1.0, 2.0 + 1e-4])}
    assert train.same_weights(a, {"w": a["w"].half()})
    assert not train.same_weights(a, {"w": torch.tensor([1.0, 2.5]).half()})
    assert not train.same_weights(a, {"v": a["w"].half()})
