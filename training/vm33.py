"""PyTorch mirrors of the ten JPEG AI VM 3.3 graphs in ../shared/pretrained/jpegai_vm33/, with the
trained weights imported from the ONNX files.

Read me first:
- Each class reproduces one graph op for op (tests/test_vm33_import.py checks torch == ONNX Runtime).
  The weights are taken from the graph's Conv/ConvTranspose nodes in node order and assigned to the
  module's `layers()` in the same order, so a graph whose structure differs fails loudly on shape.
- Value ranges as the graphs define them: analysis input 0-255 (the graph subtracts 127.5, divides by
  128); synthesis output is the normalised domain (x·128 + 127.5 gives 0-255), before PixelShuffle(4).
- Grids: luma latent at H/16 (128 ch), chroma latent at H/32 (64 ch, i.e. chroma resolution / 16);
  z at a quarter of each latent grid.
- Weights: JPEG AI VM 3.3, ONNX export by Smart Harmony LLC (JPEG-AI-OPT), CC BY 4.0 — attribution
  goes into every model card of a model that starts from them.
"""
from __future__ import annotations

import os
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F

VM33_DIR = pathlib.Path(os.environ.get(
    "JPEGAI_VM33_DIR", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "pretrained" / "jpegai_vm33"))
LUMA_LATENT = 128
CHROMA_LATENT = 64
LEAK = 0.01  # LeakyReLU slope of every VM graph


def _conv(cin, cout, k, stride=1, bias=True):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


def _conv_t(cin, cout):
    """ConvTranspose k4 s2 p1: exact 2x up-sampling."""
    return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)


class GatedDown(nn.Module):
    """x = conv3x3/s2(x); x · conv3x3(LeakyReLU(x)) — the VM analysis block."""

    def __init__(self, cin, cout):
        super().__init__()
        self.down = _conv(cin, cout, 3, stride=2)
        self.gate = _conv(cout, cout, 3)

    def forward(self, x):
        x = self.down(x)
        return x * self.gate(F.leaky_relu(x, LEAK))


class GatedUp(nn.Module):
    """x = up(x); x · conv1x1(LeakyReLU(x)) — the VM synthesis block (up: ConvTranspose or a 3x3 conv)."""

    def __init__(self, up, cout):
        super().__init__()
        self.up = up
        self.gate = _conv(cout, cout, 1)

    def forward(self, x):
        x = self.up(x)
        return x * self.gate(F.leaky_relu(x, LEAK))


class Analysis(nn.Module):
    """single_encode_{y,uv}: [B,cin,H,W] on 0-255 -> latent [B,C,H/16,W/16]."""

    def __init__(self, cin, c):
        super().__init__()
        self.blocks = nn.ModuleList([GatedDown(cin, c), GatedDown(c, c), GatedDown(c, c)])
        self.down = _conv(c, c, 3, stride=2)
        self.out = _conv(c, c, 1, bias=False)

    def layers(self):
        return [m for b in self.blocks for m in (b.down, b.gate)] + [self.down, self.out]

    def stages(self):
        """The five stages in order: three gated blocks (H/2, H/4, H/8), the stride-2 conv (H/16), the 1x1."""
        return [*self.blocks, self.down, self.out]

    def head(self, x, tail):
        """Pixels -> the features entering the last `tail` stages (tail 0: the latent)."""
        x = (x - 127.5) / 128.0
        for stage in self.stages()[:len(self.stages()) - tail]:
            x = stage(x)
        return x

    def tail(self, features, tail):
        """The last `tail` stages: head(x, tail) -> latent."""
        for stage in self.stages()[len(self.stages()) - tail:]:
            features = stage(features)
        return features

    def forward(self, x):
        return self.tail(self.head(x, 0), 0)


class HyperEncoder(nn.Module):
    """hyper_encoder_*: y -> z at a quarter of the latent grid (float, before rounding). Starts with |y|."""

    def __init__(self, c):
        super().__init__()
        self.c1, self.c2 = _conv(c, c, 3), _conv(c, c, 3)
        self.c3 = _conv(c, c, 3, stride=2)
        self.c4 = _conv(c, c, 3)
        self.c5 = _conv(c, c, 3, stride=2)

    def layers(self):
        return [self.c1, self.c2, self.c3, self.c4, self.c5]

    def forward(self, y):
        x = self.c2(F.leaky_relu(self.c1(y.abs()), LEAK))
        x = self.c4(F.leaky_relu(self.c3(x), LEAK))
        return self.c5(x)


class HyperDecoder(nn.Module):
    """hyper_decoder_* (the mean): z_hat -> mu on the latent grid (4x z), LeakyReLU at the end."""

    def __init__(self, c):
        super().__init__()
        self.c1 = _conv(c, c, 1, bias=False)
        self.up1 = _conv_t(c, c)
        self.c3 = _conv(c, c, 3)
        self.up2 = _conv_t(c, c)
        self.c5 = _conv(c, c, 3)

    def layers(self):
        return [self.c1, self.up1, self.c3, self.up2, self.c5]

    def forward(self, z_hat, latent_hw=None):
        """latent_hw given: each up-sampled tensor is cropped to the grid it feeds, ceil(latent / 2) after
        the first transposed conv and latent after the second (the rule of the fixed-point mean path, so
        the codec's bottom/right edge is the same in training and in C++). None: the graph as exported."""
        def fit(x, div):
            return x if latent_hw is None else x[..., :-(-latent_hw[0] // div), :-(-latent_hw[1] // div)]
        x = fit(F.leaky_relu(self.up1(self.c1(z_hat)), LEAK), 2)
        x = fit(F.leaky_relu(self.up2(self.c3(x)), LEAK), 1)
        return F.leaky_relu(self.c5(x), LEAK)


class HyperScaleDecoder(nn.Module):
    """hyper_scale_decoder_*: z_hat -> s on the latent grid; sigma = |s| (floored at 0.11)."""

    def __init__(self, c):
        super().__init__()
        self.up1, self.c2 = _conv_t(c, c), _conv(c, c, 3)
        self.up3, self.c4 = _conv_t(c, c), _conv(c, c, 3)

    def layers(self):
        return [self.up1, self.c2, self.up3, self.c4]

    def forward(self, z_hat):
        x = F.relu(self.c2(F.relu(self.up1(z_hat))))
        return self.c4(F.relu(self.up3(x)))


class Synthesis(nn.Module):
    """decoder_{y,uv}: latent [B,cin,h,w] -> [B,cout,4h,4w] (the PixelShuffle(4) input, normalised domain).

    x + ReLU(conv3x3(x)); two gated ConvTranspose up-samplers; a gated 3x3; a bias-free 1x1 head.
    """

    def __init__(self, cin, c1, c2, cout):
        super().__init__()
        self.res = _conv(cin, cin, 3)
        self.up1 = GatedUp(_conv_t(cin, c1), c1)
        self.up2 = GatedUp(_conv_t(c1, c2), c2)
        self.mid = GatedUp(_conv(c2, c2, 3), c2)
        self.out = _conv(c2, cout, 1, bias=False)

    def layers(self):
        return [self.res] + [m for b in (self.up1, self.up2, self.mid) for m in (b.up, b.gate)] + [self.out]

    def forward(self, x):
        x = x + F.relu(self.res(x))
        return self.out(self.mid(self.up2(self.up1(x))))


# graph file stem -> module factory
GRAPHS = {
    "single_encode_y": lambda: Analysis(1, LUMA_LATENT),
    "single_encode_uv": lambda: Analysis(3, CHROMA_LATENT),
    "hyper_encoder_y": lambda: HyperEncoder(LUMA_LATENT),
    "hyper_encoder_uv": lambda: HyperEncoder(CHROMA_LATENT),
    "hyper_decoder_y": lambda: HyperDecoder(LUMA_LATENT),
    "hyper_decoder_uv": lambda: HyperDecoder(CHROMA_LATENT),
    "hyper_scale_decoder_y": lambda: HyperScaleDecoder(LUMA_LATENT),
    "hyper_scale_decoder_uv": lambda: HyperScaleDecoder(CHROMA_LATENT),
    "decoder_y": lambda: Synthesis(LUMA_LATENT, 96, 64, 16),
    "decoder_uv": lambda: Synthesis(LUMA_LATENT + CHROMA_LATENT, 64, 64, 32),
}


def onnx_conv_weights(path):
    """[(weight, bias or None)] of every Conv/ConvTranspose node of an ONNX graph, in node order."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            w = init[node.input[1]]
            b = init[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            out.append((w, b))
    return out


def load_graph(stem, vm_dir=VM33_DIR):
    """The torch mirror of one VM graph with its trained weights."""
    module = GRAPHS[stem]()
    path = pathlib.Path(vm_dir) / f"{stem}.onnx"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the VM 3.3 graphs are needed to start a vm33 model from scratch "
                                "(set JPEGAI_VM33_DIR, or resume from a checkpoint)")
    weights = onnx_conv_weights(path)
    layers = module.layers()
    if len(weights) != len(layers):
        raise ValueError(f"{stem}: graph has {len(weights)} convolutions, module {len(layers)}")
    with torch.no_grad():
        for layer, (w, b) in zip(layers, weights):
            if layer.weight.shape != w.shape:
                raise ValueError(f"{stem}: weight shape {tuple(w.shape)} != {tuple(layer.weight.shape)}")
            layer.weight.copy_(w)
            if (layer.bias is None) != (b is None):
                raise ValueError(f"{stem}: bias presence differs")
            if b is not None:
                layer.bias.copy_(b.reshape(layer.bias.shape))
    return module


def make_graph(stem, pretrained=True, vm_dir=None):
    """load_graph, or the same module with random weights (pretrained=False)."""
    if not pretrained:
        return GRAPHS[stem]()
    return load_graph(stem, vm_dir or VM33_DIR)


def chroma_analysis_input(y, uv):
    """VM chroma analysis input at chroma resolution: [Y 2x2-mean, U, V] (the order the graph was trained on)."""
    return torch.cat([F.avg_pool2d(y, 2, ceil_mode=True), uv], dim=1)


def chroma_synthesis_input(y_hat_luma, y_hat_chroma):
    """Luma latent subsampled [::2, ::2] onto the chroma grid, concatenated before the chroma latent."""
    return torch.cat([y_hat_luma[..., ::2, ::2], y_hat_chroma], dim=1)
