"""BT.709 full-range Y'CbCr with 4:2:0 chroma (sample location type 0), on 0-255 floats."""
import torch
import torch.nn.functional as F

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
CB_DIV, CR_DIV = 2.0 * (1.0 - KB), 2.0 * (1.0 - KR)  # 1.8556, 1.5748


def rgb_to_yuv420(rgb: torch.Tensor):
    """rgb [B,3,H,W] in 0..255 (H, W even) -> (y [B,1,H,W], uv [B,2,H/2,W/2]), 0..255 full range.

    Chroma decimation follows the VVC anchor (../shared/anchors/vvc/README.md): [1 2 1]/4
    horizontally at even columns with edge replication, then the mean of each row pair.
    """
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = KR * r + KG * g + KB * b
    c = torch.cat([(b - y) / CB_DIV, (r - y) / CR_DIV], dim=1) + 128.0
    w = c.shape[-1]
    p = F.pad(c, (1, 1, 0, 0), mode="replicate")
    h = 0.25 * p[..., 0:w:2] + 0.5 * p[..., 1:w + 1:2] + 0.25 * p[..., 2:w + 2:2]
    uv = 0.5 * (h[..., 0::2, :] + h[..., 1::2, :])
    return y, uv


def normalise(x: torch.Tensor) -> torch.Tensor:
    """0..255 -> network input range, as JPEG AI's analysis `normalize`."""
    return (x - 127.5) / 128.0


def denormalise(x: torch.Tensor) -> torch.Tensor:
    return x * 128.0 + 127.5


def psnr(mse: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))


def yuv_mse(y_rec, uv_rec, y, uv):
    """Per-image MSE of Y, U, V in the 0-255 domain -> [B, 3]."""
    my = (y_rec - y).pow(2).mean(dim=(1, 2, 3))
    muv = (uv_rec - uv).pow(2).mean(dim=(2, 3))
    return torch.stack([my, muv[:, 0], muv[:, 1]], dim=1)


def weighted_mse(mse3: torch.Tensor) -> torch.Tensor:
    """The training distortion: YUV MSE weighted 6:1:1."""
    return (6.0 * mse3[:, 0] + mse3[:, 1] + mse3[:, 2]) / 8.0


def psnr_yuv(mse3: torch.Tensor) -> torch.Tensor:
    """PSNR-YUV = (6·PSNR_Y + PSNR_U + PSNR_V) / 8, per image."""
    p = psnr(mse3)
    return (6.0 * p[:, 0] + p[:, 1] + p[:, 2]) / 8.0
