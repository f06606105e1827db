"""Training-crop augmentation: thin constant lines along the picture's borders ("frame lines").

Why: scanned photos, letterboxed frames and screenshots often end in a 1-3 pixel line of one colour, and the
training pool (crops of camera photos) has none.  Measured on Kodak (whose scans end in a light row and
then a black one at the bottom of 17 of the 24 photos, a black right column on 3 portrait ones, and a flat
grey frame on most): the vm33 model leaves the bottom 8 rows at 3.5x the interior's squared error even
without quantisation (rows H-2 and H-1 at 13x and 6.5x: kodim05's 102 / 0 come back as ~55 / ~38), where
the VVC anchor stays at 1.04x.  The codec
never had to represent such a line, so it cannot; showing it some teaches the analysis tail and synthesis to.
"""
import torch

LINE_PROBABILITY = 0.12  # per crop; about one augmented crop per batch of 8
MAX_WIDTH = 3  # pixels


def _line_value(gen: torch.Generator) -> torch.Tensor:
    u = float(torch.rand((), generator=gen))
    if u < 0.4:
        return torch.zeros(3)
    if u < 0.5:
        return torch.full((3,), 255.0)
    if u < 0.8:
        return torch.full((3,), float(torch.randint(256, (), generator=gen)))
    return torch.randint(256, (3,), generator=gen).float()


def paint_frame_lines(rgb: torch.Tensor, gen: torch.Generator, probability: float = LINE_PROBABILITY):
    """rgb [B,3,H,W] float 0-255, edited in place; -> the indices of the crops that were changed.

    Per changed crop: each side gets lines with probability 0.35 (top, left) or 0.65 (bottom, right: scans
    end there; at least one side), width 1..MAX_WIDTH pixels, each line of its own value (black 40 %, white
    10 %, a random grey 30 %, a random colour 20 %; Kodak's bottom edge is a light row, then a black one),
    the outermost line outermost on every side of the crop."""
    changed = []
    for b in range(rgb.shape[0]):
        if float(torch.rand((), generator=gen)) >= probability:
            continue
        u = torch.rand(5, generator=gen)
        sides = [bool(u[i] < p) for i, p in enumerate((0.35, 0.65, 0.35, 0.65))]  # top, bottom, left, right
        if not any(sides):
            sides[1 if u[4] < 0.5 else 3] = True
        width = int(torch.randint(1, MAX_WIDTH + 1, (), generator=gen))
        for k in range(width):  # k = 0: the outermost line
            v = _line_value(gen).to(rgb)[:, None]
            top, bottom, left, right = sides
            if top:
                rgb[b, :, k, :] = v
            if bottom:
                rgb[b, :, -1 - k, :] = v
            if left:
                rgb[b, :, :, k] = v
            if right:
                rgb[b, :, :, -1 - k] = v
        changed.append(b)
    return changed
