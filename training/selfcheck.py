"""Fast invariants of the training code (seconds, CPU):  python -m training.selfcheck

Not a pytest module on purpose: the runtime package's tests must not need torch.
"""
import torch

from .codec import Codec, code_residual
from .context_model import STAGE_PHASES, merge_phases, split_phases
from .hyper_scale_int import HyperScaleDecoderInt
from .sigma_levels import S_MAX, SIGMA_MAX, SIGMA_MIN, SKIP_INDEX_THRESHOLD, gain_from_offset, sigma_from_s, sigma_index


def check_hsd_qat_equals_integer():
    torch.manual_seed(1)
    for c, latent_hw in ((160, (13, 19)), (96, (8, 8))):
        hsd = HyperScaleDecoderInt(c)
        with torch.no_grad():  # spread weights and biases so shifts differ per channel
            for conv in (hsd.conv1, hsd.conv2, hsd.conv3):
                conv.weight.mul_(torch.rand(conv.weight.shape[0], 1, 1, 1) * 8)
                conv.bias.add_(torch.randn_like(conv.bias))
        z = torch.randint(-31, 32, (2, c, -(-latent_hw[0] // 4), -(-latent_hw[1] // 4)))
        s_int = hsd.int_forward(z, latent_hw)
        assert s_int.dtype == torch.int32 and tuple(s_int.shape[-2:]) == latent_hw
        assert torch.equal(hsd(z.float(), latent_hw).to(torch.int32), s_int), "QAT path != integer path"
        assert 0 <= int(s_int.min()) and int(s_int.max()) <= S_MAX
        blobs = hsd.export_int()
        assert all(blobs[f"conv{i}.{k}"].dtype == t for i in (1, 2, 3)
                   for k, t in (("weight", torch.int8), ("bias", torch.int32), ("shift", torch.int8)))
        assert len(set(blobs["conv3.shift"].tolist())) > 1


def check_sigma_levels():
    s = torch.tensor([-500, 0, 63, 64, 128 * 5, 128 * 5 + 63, 128 * 5 + 64, S_MAX, 10 ** 6])
    assert sigma_index(s).tolist() == [0, 0, 0, 1, 5, 5, 6, 63, 63]
    assert abs(float(sigma_from_s(torch.tensor(0.0, dtype=torch.float64))) - SIGMA_MIN) < 1e-9
    assert abs(float(sigma_from_s(torch.tensor(63.0 * 128, dtype=torch.float64))) - SIGMA_MAX) < 1e-9
    s, o = torch.tensor(1000.0, dtype=torch.float64), torch.tensor(-300.0, dtype=torch.float64)
    assert torch.allclose(sigma_from_s(s) * gain_from_offset(o), sigma_from_s(s + o))


def check_phases_and_skip():
    x = torch.randn(2, 3, 6, 10)
    parts = split_phases(x)
    assert torch.equal(merge_phases(parts), x)
    assert all(torch.equal(p, x[:, :, dy::2, dx::2]) for p, (dy, dx) in zip(parts, STAGE_PHASES))
    y, mu = torch.randn(1, 4, 2, 2) * 5, torch.randn(1, 4, 2, 2)
    s = torch.full((1, 4, 2, 2), 128.0 * SKIP_INDEX_THRESHOLD, dtype=torch.float64)
    s[:, 0] = 128.0 * SKIP_INDEX_THRESHOLD - 65  # index THRESHOLD - 1: skipped
    y_hat, bits = code_residual(y, mu, s, torch.ones(1, 4, 1, 1), training=False)
    assert torch.equal(y_hat[:, 0], mu[:, 0]) and float(bits[:, 0].abs().sum()) == 0.0
    assert torch.allclose(y_hat[:, 1:], torch.round(y[:, 1:] - mu[:, 1:]) + mu[:, 1:])


def check_codec_shapes():
    model = Codec().eval()
    with torch.no_grad():
        y_rec, uv_rec, bits = model(torch.rand(1, 1, 80, 112) * 255, torch.rand(1, 2, 40, 56) * 255,
                                    torch.tensor([2]), "sop")
    assert y_rec.shape == (1, 1, 80, 112) and uv_rec.shape == (1, 2, 40, 56) and bits.shape == (1,)


def main():
    torch.set_num_threads(1)
    for check in (check_hsd_qat_equals_integer, check_sigma_levels, check_phases_and_skip, check_codec_shapes):
        check()
        print(f"ok  {check.__name__}")


if __name__ == "__main__":
    main()
