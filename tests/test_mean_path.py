"""The fixed-point mean path (csrc/mean_path.cpp) against its numpy definition
(training/reference_decoder.py MeanPathInt), bit for bit: inverse gain, hyper-mean decoder psi, the
luma context loop and the chroma mean, decoder and encoder side, any thread count; hostile residuals
saturate identically; inconsistent model sections are refused."""
from __future__ import annotations

import numpy as np
import pytest

import jpegai_fast
from jpegai_fast import _core
from shipped_model import MODELS, requires_model  # noqa: E402  (repository root on sys.path)
from training.reference_decoder import latent_size  # noqa: E402

pytestmark = requires_model
skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def ref():
    from training import reference_decoder as rd

    model = rd.Model(MODELS[0])
    if model.mean is None:
        pytest.fail("the shipped model has no fixed-point mean path (model.bin sections mean.*)")
    return rd, model


@pytest.fixture(scope="module")
def core_mean():
    return _core.MeanPath((MODELS[0] / "model.bin").read_bytes(), 160, 96)


def test_inverse_gain_matches_numpy_and_exp(ref):
    rd, _ = ref
    t = np.arange(-12000, 12001, 7, dtype=np.int64)
    m_np, n_np = rd.inverse_gain(t)
    for i in range(0, len(t), 37):
        assert _core.inverse_gain(int(t[i])) == (int(m_np[i]), int(n_np[i]))
    assert ((m_np >= 2**30) & (m_np < 2**31)).all()
    approx = m_np * np.ldexp(1.0, (n_np - 30).astype(int))
    exact = np.exp(-t * np.log(60 / 0.11) / 63 / 128)
    assert np.abs(approx / exact - 1).max() < 1e-6


def _latents(rd, model, photo, rate):
    enc = rd.encode_latents(model, photo, rate)
    y, uv = rd.rgb_to_yuv420(photo)
    y_float = {"luma": model.run("analysis_luma", image_y=y[None, None])[0],
               "chroma": model.run("analysis_chroma", image_y=y[None, None], image_uv=uv[None])[0]}
    return enc, y_float


@pytest.mark.parametrize("crop,rate", [((0, 0, 78, 94), 0), ((100, 60, 130, 102), 3), ((20, 200, 64, 64), 7)])
def test_cpp_equals_numpy(ref, core_mean, crop, rate):
    rd, model = ref
    top, left, h, w = crop
    photo = np.ascontiguousarray(skdata.astronaut()[top:top + h, left:left + w])
    enc, y_float = _latents(rd, model, photo, min(rate, model.num_rates - 1))
    hw = latent_size(photo.shape[:2])
    for k, comp in enumerate(rd.COMPONENTS):
        z = np.ascontiguousarray(enc["z_hat"][comp])
        psi_np = model.mean.psi(comp, z, hw)
        offsets = model.offset(comp, min(rate, model.num_rates - 1)).astype(np.int32)
        gain = model.gain(comp, min(rate, model.num_rates - 1)).astype(np.float32)
        want_dec = model.mean.reconstruct(comp, psi_np, enc["idx"][comp], offsets, residual=enc["residual"][comp])
        want_enc = model.mean.reconstruct(comp, psi_np, enc["idx"][comp], offsets, gain=gain, y=y_float[comp])
        for threads in (1, 2, 3):
            psi = core_mean.hyper_decoder(k, z, hw[0], hw[1], threads)
            np.testing.assert_array_equal(psi.transpose(2, 0, 1), psi_np)
            yq, none = core_mean.reconstruct(k, psi, enc["idx"][comp], offsets, residual=enc["residual"][comp],
                                             threads=threads)
            assert none is None
            np.testing.assert_array_equal(yq, want_dec[0])
            yq_e, r_e = core_mean.reconstruct(k, psi, enc["idx"][comp], offsets,
                                              y=np.ascontiguousarray(y_float[comp]), gain=gain, threads=threads)
            np.testing.assert_array_equal(r_e, want_enc[1])
            np.testing.assert_array_equal(yq_e, want_enc[0])
        # the encoder's residual decodes to the encoder's y_hat
        np.testing.assert_array_equal(want_enc[0], model.mean.reconstruct(
            comp, psi_np, enc["idx"][comp], offsets, residual=want_enc[1])[0])


def test_hostile_residuals_and_gains_saturate_identically(ref, core_mean):
    rd, model = ref
    rng = np.random.default_rng(5)
    hl, wl = 7, 5
    hz, wz = 2, 2
    for k, comp in enumerate(rd.COMPONENTS):
        c = model.channels[comp]
        z = rng.integers(-31, 32, (c, hz, wz)).astype(np.int16)
        idx = rng.integers(0, 64, (c, hl, wl)).astype(np.uint8)
        idx[rng.random(idx.shape) < 0.3] = 255
        res = rng.choice(np.array([-32768, -32767, -1000, -1, 0, 1, 999, 32767], np.int16), (c, hl, wl))
        for disp in (-8191, 0, 8191):
            offsets = (model.offset(comp, 0) + disp).astype(np.int32)
            psi = core_mean.hyper_decoder(k, z, hl, wl, 1)
            got, _ = core_mean.reconstruct(k, psi, idx, offsets, residual=res, threads=2)
            want, _ = model.mean.reconstruct(comp, model.mean.psi(comp, z, (hl, wl)), idx, offsets, residual=res)
            np.testing.assert_array_equal(got, want)


def test_bad_arguments_raise_value_error(core_mean):
    z = np.zeros((160, 2, 2), np.int16)
    with pytest.raises(ValueError):
        core_mean.hyper_decoder(2, z, 5, 5)
    with pytest.raises(ValueError):
        core_mean.hyper_decoder(0, z, 9, 5)  # latent larger than 4x the z grid
    with pytest.raises(ValueError):
        core_mean.hyper_decoder(0, z.astype(np.int32), 5, 5)
    psi = core_mean.hyper_decoder(0, z, 5, 5)
    idx = np.zeros((160, 5, 5), np.uint8)
    off = np.zeros(160, np.int32)
    with pytest.raises(ValueError):
        core_mean.reconstruct(0, psi, idx, off)  # neither residual nor y
    with pytest.raises(ValueError):
        core_mean.reconstruct(0, psi, idx[:, :4], off, residual=np.zeros((160, 4, 5), np.int16))  # psi mismatch
    with pytest.raises(ValueError):
        core_mean.reconstruct(0, psi, idx, off[:10], residual=np.zeros((160, 5, 5), np.int16))


def _mutated_blob(rd, name, fn):
    sections = dict(rd.read_blob((MODELS[0] / "model.bin").read_bytes()))
    sections[name] = fn(np.array(sections[name]))
    from training import model_file

    return model_file.write_blob(sections)


@pytest.mark.parametrize("section,mutate", [
    ("mean.hd_luma.c3.weight", lambda w: np.full_like(w, 127)),           # int32 accumulator could overflow
    ("mean.fuse1.a.meta", lambda m: np.array([7, *m[1:]], m.dtype)),      # unknown layer kind
    ("mean.fuse2.c.meta", lambda m: np.array([*m[:4], m[4] + 1, m[5]], m.dtype)),  # mu not at y_frac
    ("mean.ctx1.b.shift", lambda s: np.full_like(s, 40)),                 # shift out of range
    ("mean.y_frac", lambda f: np.array([16, f[1]], f.dtype)),
])
def test_inconsistent_model_is_refused(ref, section, mutate):
    rd, _ = ref
    with pytest.raises(ValueError):
        _core.MeanPath(_mutated_blob(rd, section, mutate), 160, 96)


def test_decoded_picture_identical_for_thread_counts():
    photo = np.ascontiguousarray(skdata.coffee()[50:170, 100:290])
    data = jpegai_fast.encode(photo, quality=46.5, threads=1)
    a = jpegai_fast.Decoder(threads=1).decode_latents(data)
    b = jpegai_fast.Decoder(threads=2).decode_latents(data)
    for comp in ("luma", "chroma"):
        np.testing.assert_array_equal(a["y_hat"][comp], b["y_hat"][comp])
