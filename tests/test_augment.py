"""training.augment.paint_frame_lines: thin constant lines only along the crop's borders, only on the crops it
reports, reproducible from the generator, and none at probability 0."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training.augment import MAX_WIDTH, paint_frame_lines  # noqa: E402


def _crops(n=64, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 200 + 20


def test_probability_zero_changes_nothing():
    x = _crops()
    before = x.clone()
    assert paint_frame_lines(x, torch.Generator().manual_seed(0), 0.0) == []
    assert torch.equal(x, before)


def test_lines_only_on_reported_crops_and_borders():
    x = _crops()
    before = x.clone()
    changed = paint_frame_lines(x, torch.Generator().manual_seed(3), 0.5)
    assert 10 < len(changed) < 54  # about half of 64
    diff = (x != before).any(dim=1)  # [B,H,W]
    untouched = [b for b in range(len(x)) if b not in changed]
    assert not diff[untouched].any()
    # the interior beyond MAX_WIDTH pixels from every side never changes
    assert not diff[:, MAX_WIDTH:-MAX_WIDTH, MAX_WIDTH:-MAX_WIDTH].any()
    for b in changed:
        assert diff[b].any()
    assert x.min() >= 0 and x.max() <= 255


def test_outermost_line_is_constant_on_painted_sides():
    x = _crops(n=200)
    before = x.clone()
    changed = paint_frame_lines(x, torch.Generator().manual_seed(7), 1.0)
    assert changed == list(range(200))
    sides = 0
    for b in changed:
        for now, was in ((x[b, :, -1, :], before[b, :, -1, :]), (x[b, :, :, -1], before[b, :, :, -1]),
                         (x[b, :, 0, :], before[b, :, 0, :]), (x[b, :, :, 0], before[b, :, :, 0])):
            inner = now[:, MAX_WIDTH:-MAX_WIDTH]  # the corners may belong to a crossing side's lines
            if not torch.equal(inner, was[:, MAX_WIDTH:-MAX_WIDTH]):
                sides += 1
                assert torch.equal(inner, inner[:, :1].expand_as(inner))
    assert sides >= 200  # at least one side per crop


def test_reproducible():
    a, b = _crops(), _crops()
    ca = paint_frame_lines(a, torch.Generator().manual_seed(11), 0.3)
    cb = paint_frame_lines(b, torch.Generator().manual_seed(11), 0.3)
    assert ca == cb and torch.equal(a, b)
