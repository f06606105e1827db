"""Model topology from model.bin (docs/model_format.md "Fixed-point mean path"): a synthetic model in the newer
form — hyper-mean decoder as a layer list that makes mu on the latent grid (two transposed convs, LeakyReLU),
a residual context model, chroma on a coarser latent grid — decoded by the C++ core equals the numpy definition
(training/reference_decoder.py MeanPathInt) bit for bit, through MeanPath and through the one-call LatentModel,
decoder and encoder side, for every thread count.  The VM 3.3-based models use this form."""
from __future__ import annotations

import math

import numpy as np
import pytest

from jpegai_fast import _core, container, entropy
from shipped_model import ROOT  # noqa: F401  (repository root on sys.path)
from training import model_file
from training import reference_decoder as rd

C_LUMA, C_CHROMA, RATES, Y_FRAC, PSI_FRAC = 32, 32, 2, 8, 8
LOG_STEP = math.log(60.0 / 0.11) / 63


def _layer(rng, sections, name, cin, cout, kind, k, frac_in, frac_out, act, groups=1, bias=True, w_frac=7):
    shape = (cout, cin // groups, k, k)
    sections[f"{name}.weight"] = rng.integers(-24, 25, shape).astype(np.int8)
    sections[f"{name}.bias"] = (rng.integers(-4000, 4000, cout) if bias else np.zeros(cout)).astype(np.int32)
    sections[f"{name}.shift"] = np.full(cout, frac_in + w_frac - frac_out, np.int8)
    sections[f"{name}.meta"] = np.array([kind, k, groups, frac_in, frac_out, act], np.int32)


def synthetic_blob(seed=0, grid_chroma=32):
    rng = np.random.default_rng(seed)
    s = {"meta.channels": np.array([C_LUMA, C_CHROMA], np.int32),
         "meta.consts": np.array([4, 31, 63, RATES, 128, 12], np.int32),
         "meta.rate_lambdas": np.array([0.02, 0.1], np.float32),
         "meta.grid": np.array([16, grid_chroma], np.int32),
         "mean.y_frac": np.array([Y_FRAC, Y_FRAC], np.int32),
         "mean.topology": np.array([rd.HYPER_MEAN_MU, 1, 5, 5], np.int32)}
    conv, convt, leaky, relu = rd.MEAN_KIND_CONV, rd.MEAN_KIND_CONVT, rd.MEAN_ACT_LEAKY, rd.MEAN_ACT_RELU
    for comp, c in (("luma", C_LUMA), ("chroma", C_CHROMA)):
        s[f"hsd.{comp}.conv1.weight"] = rng.integers(-8, 9, (c, c, 1, 1)).astype(np.int8)
        s[f"hsd.{comp}.conv2.weight"] = rng.integers(-4, 5, (c, c, 3, 3)).astype(np.int8)
        s[f"hsd.{comp}.conv3.weight"] = rng.integers(-16, 17, (16 * c, c, 1, 1)).astype(np.int8)
        for i, (n, b, sh) in enumerate(((c, 64, 3), (c, 64, 5), (16 * c, 3000, 0)), 1):
            s[f"hsd.{comp}.conv{i}.bias"] = (b + rng.integers(0, 1500 if i == 3 else 32, n)).astype(np.int32)
            s[f"hsd.{comp}.conv{i}.shift"] = np.full(n, sh, np.int8)
        freq = np.full(63, 65)
        freq[31] += 4096 - freq.sum()
        s[f"zcdf.{comp}"] = np.concatenate([[0], np.cumsum(freq)]).astype(np.uint16).reshape(1, 64).repeat(c, 0)
        q7 = np.stack([rng.integers(-100, 100, c), rng.integers(150, 400, c)]).astype(np.int32)
        s[f"gain.{comp}.q7"] = q7
        s[f"gain.{comp}.f32"] = np.exp(q7 * (LOG_STEP / 128)).astype(np.float32)
        p = f"mean.hd_{comp}"
        _layer(rng, s, f"{p}.0", c, c, conv, 1, 0, 6, 0, bias=False)
        _layer(rng, s, f"{p}.1", c, c, convt, 4, 6, 6, leaky)
        _layer(rng, s, f"{p}.2", c, c, conv, 3, 6, 7, 0)
        _layer(rng, s, f"{p}.3", c, c, convt, 4, 7, 7, leaky)
        _layer(rng, s, f"{p}.4", c, c, conv, 3, 7, PSI_FRAC, leaky)
    c = C_LUMA
    for st in range(4):
        _layer(rng, s, f"mean.fuse{st}.a", 2 * c if st else c, c, conv, 1, PSI_FRAC if st == 0 else 7, 7, relu,
               bias=False)
        _layer(rng, s, f"mean.fuse{st}.b", c, c, conv, 1, 7, 7, relu, bias=False)
        _layer(rng, s, f"mean.fuse{st}.c", c, c, conv, 1, 7, Y_FRAC, 0, bias=False)
        if st:
            _layer(rng, s, f"mean.ctx{st}.a", st * c, c, conv, 1, Y_FRAC, 7, 0, bias=False)
            _layer(rng, s, f"mean.ctx{st}.b", c, c, conv, 3, 7, 6, 0, groups=2, bias=False)
    return model_file.write_blob(s)


@pytest.fixture(scope="module")
def blob():
    return synthetic_blob()


def _sizes(h, w, grid):
    hl, wl = -(-h // grid), -(-w // grid)
    return hl, wl, -(-hl // 4), -(-wl // 4)


@pytest.mark.parametrize("comp,hl,wl", [("luma", 7, 9), ("chroma", 4, 5), ("luma", 8, 8), ("chroma", 1, 3)])
def test_hyper_mean_decoder_and_reconstruct_equal_numpy(blob, comp, hl, wl):
    rng = np.random.default_rng(hl * 31 + wl)
    k = ("luma", "chroma").index(comp)
    c = (C_LUMA, C_CHROMA)[k]
    ref = rd.MeanPathInt(rd.read_blob(blob))
    core = _core.MeanPath(blob, C_LUMA, C_CHROMA)
    z = rng.integers(-6, 7, (c, -(-hl // 4), -(-wl // 4))).astype(np.int16)
    want_psi = ref.psi(comp, z, (hl, wl))
    idx = rng.integers(0, 64, (c, hl, wl)).astype(np.uint8)
    idx[rng.random(idx.shape) < 0.3] = 255
    residual = np.where(idx != 255, rng.integers(-40, 41, idx.shape), 0).astype(np.int16)
    offsets = rng.integers(-300, 300, c).astype(np.int32)
    want, _ = ref.reconstruct(comp, want_psi, idx, offsets, residual=residual)
    y = rng.normal(0, 3, idx.shape).astype(np.float32)
    gain = np.exp(offsets * (LOG_STEP / 128)).astype(np.float32)
    want_enc, want_r = ref.reconstruct(comp, want_psi, idx, offsets, gain=gain, y=y)
    for threads in (1, 2, 3):
        psi = core.hyper_decoder(k, z, hl, wl, threads)
        np.testing.assert_array_equal(psi.transpose(2, 0, 1), want_psi)
        got, _ = core.reconstruct(k, psi, idx, offsets, residual=residual, threads=threads)
        np.testing.assert_array_equal(got, want)
        got, r = core.reconstruct(k, psi, idx, offsets, y=y, gain=gain, threads=threads)
        np.testing.assert_array_equal(got, want_enc)
        np.testing.assert_array_equal(r, want_r)


def _header(h, w):
    """The header of a synthetic-model stream at rate point 1."""
    hd = container.PictureHeader()
    hd.height, hd.width = h, w
    hd.bit_depth, hd.chroma_format, hd.colour_transform, hd.model_id, hd.operating_point = 8, 1, 1, 1, 1
    hd.rate_point = 1
    hd.latent_channels_luma = hd.coded_channels_luma = C_LUMA
    hd.latent_channels_chroma = hd.coded_channels_chroma = C_CHROMA
    return hd


def _stream(lm, blob, h, w, rng):
    """A stream of the synthetic model made with the numpy definition: z, indices, residuals, y_hat."""
    ref = rd.MeanPathInt(rd.read_blob(blob))
    sections = rd.read_blob(blob)
    z, idx, res, y_hat = {}, {}, {}, {}
    payload = {}
    for k, comp in enumerate(("luma", "chroma")):
        c = (C_LUMA, C_CHROMA)[k]
        hl, wl, hz, wz = lm.latent_size(k, h, w)
        z[comp] = rng.integers(-4, 5, (c, hz, wz)).astype(np.int16)
        layers = [(sections[f"hsd.{comp}.conv{i}.weight"], sections[f"hsd.{comp}.conv{i}.bias"],
                   sections[f"hsd.{comp}.conv{i}.shift"]) for i in (1, 2, 3)]
        s = rd.hsd_forward(z[comp], layers, (hl, wl))
        offsets = sections[f"gain.{comp}.q7"][1]
        idx[comp] = rd.scale_indices(s, offsets, 4)
        res[comp] = np.where(idx[comp] != 255, rng.integers(-3, 4, idx[comp].shape), 0).astype(np.int16)
        q, _ = ref.reconstruct(comp, ref.psi(comp, z[comp], (hl, wl)), idx[comp], offsets, residual=res[comp])
        y_hat[comp] = q.astype(np.float32) * np.float32(2.0 ** -Y_FRAC)
        fm = entropy.FactorizedModel(sections[f"zcdf.{comp}"], 31)
        payload[comp] = (fm.encode(z[comp]), entropy.encode_residual(res[comp], idx[comp]))
    hd = _header(h, w)
    soz = rd._ue_bytes(len(payload["luma"][0])) + payload["luma"][0] + payload["chroma"][0]
    stream = container.write(hd, {"SOZ": soz, "SORP": payload["luma"][1], "SORS": payload["chroma"][1]})
    return stream, z, idx, res, y_hat


@pytest.mark.parametrize("h,w", [(100, 140), (64, 64), (33, 17)])
def test_one_call_decode_of_the_synthetic_model(blob, h, w):
    lm = _core.LatentModel(blob)
    assert lm.grid == (16, 32) and lm.channels == (C_LUMA, C_CHROMA)
    rng = np.random.default_rng(h * w)
    stream, z, idx, res, y_hat = _stream(lm, blob, h, w, rng)
    for threads in (1, 2, 0):
        out = lm.decode(stream, threads=threads, inspect=True)
        for k, comp in enumerate(("luma", "chroma")):
            assert out["latent_hw"][comp] == lm.latent_size(k, h, w)[:2]
            np.testing.assert_array_equal(out[comp]["z"], z[comp])
            np.testing.assert_array_equal(out[comp]["index"], idx[comp])
            np.testing.assert_array_equal(out[comp]["residual"], res[comp])
            np.testing.assert_array_equal(out["y_hat"][comp], y_hat[comp])


def test_prepared_encode_round_trips_through_the_decoder(blob):
    lm = _core.LatentModel(blob)
    h, w = 90, 130
    rng = np.random.default_rng(7)
    zs, ys = [], []
    for k in range(2):
        hl, wl, hz, wz = lm.latent_size(k, h, w)
        zs.append(rng.integers(-4, 5, ((C_LUMA, C_CHROMA)[k], hz, wz)).astype(np.int16))
        ys.append(rng.normal(0, 4, ((C_LUMA, C_CHROMA)[k], hl, wl)).astype(np.float32))
    prepared = lm.prepare_encode(h, w, zs[0], zs[1], ys[0], ys[1], threads=2)
    ref = rd.MeanPathInt(rd.read_blob(blob))
    sections = rd.read_blob(blob)
    soz, sorp, sors = prepared.code(1, threads=2)
    hd = _header(h, w)
    out = lm.decode(container.write(hd, {"SOZ": soz, "SORP": sorp, "SORS": sors}), inspect=True)
    for k, comp in enumerate(("luma", "chroma")):
        hl, wl = lm.latent_size(k, h, w)[:2]
        offsets = sections[f"gain.{comp}.q7"][1]
        want, r = ref.reconstruct(comp, ref.psi(comp, zs[k], (hl, wl)), out[comp]["index"], offsets,
                                  gain=sections[f"gain.{comp}.f32"][1], y=ys[k])
        np.testing.assert_array_equal(out[comp]["z"], zs[k])
        np.testing.assert_array_equal(out[comp]["residual"], r)
        np.testing.assert_array_equal(out["y_hat"][comp], want.astype(np.float32) * np.float32(2.0 ** -Y_FRAC))


@pytest.mark.parametrize("section,mutate", [
    ("mean.topology", lambda t: np.array([2, *t[1:]], t.dtype)),        # unknown output form
    ("mean.topology", lambda t: np.array([0, *t[1:]], t.dtype)),        # psi form, but the list makes mu
    ("mean.hd_luma.4.meta", lambda m: np.array([*m[:5], 4], m.dtype)),  # unknown activation
    ("meta.grid", lambda g: np.array([16, 24], g.dtype)),               # grid must be 16 or 32
])
def test_inconsistent_topology_is_refused(section, mutate):
    sections = dict(rd.read_blob(synthetic_blob()))
    sections[section] = mutate(np.array(sections[section]))
    with pytest.raises(ValueError):
        _core.LatentModel(model_file.write_blob(sections))
