"""A second, high-rate analysis (encoder only): rate points from the card's ``analysis_hi_from`` on are analysed
by ``analysis_{luma,chroma}_hi.onnx``.

Torch side (training/vm_codec.py): each picture of a batch goes through the analysis of its rate point, a
checkpoint without the second analysis loads with a copy of the shared one.  Runtime side: the encoder picks the
graph by rate point, the decoder is untouched, and a card that names
graphs the directory lacks is refused."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from shipped_model import ROOT, requires_model

torch = pytest.importorskip("torch")

from training import vm_codec  # noqa: E402

VM33 = ROOT / "src" / "jpegai_fast" / "models" / "vm33"
HI_FROM = 6


def _model(hi_from=HI_FROM):
    torch.manual_seed(0)
    return vm_codec.VMCodec(pretrained=False, analysis_hi_from=hi_from)


def test_each_picture_goes_through_the_analysis_of_its_rate_point():
    model = _model()
    with torch.no_grad():  # make the two analyses differ
        model.luma_analysis_hi.out.weight.mul_(-1.5)
        model.chroma_analysis_hi.out.weight.mul_(0.5)
    y, uv = torch.rand(4, 1, 64, 64) * 255, torch.rand(4, 2, 32, 32) * 255
    rates = torch.tensor([HI_FROM, 0, 11, HI_FROM - 1])
    with torch.no_grad():
        mixed = model.analysis(y, uv, rates)
        lo = model.analysis(y, uv)  # no rate: the shared analysis
        hi = model.analysis(y, uv, torch.full((4,), 11))
    for m, a, b in zip(mixed, lo, hi):
        for i, r in enumerate(rates.tolist()):
            assert torch.equal(m[i], (b if r >= HI_FROM else a)[i]), (i, r)
        assert not torch.equal(a, b)


def test_pre_emphasis_in_training_is_the_encoders_second_pass():
    """train.py --pre-emphasis: the high-rate analysis sees x + β·(x − S(A(x))) per plane (S(A(x)) its own latent
    synthesised unquantised by BOP, clamped to 0–255), as jpegai_fast.encoder.pre_emphasise builds it; the low
    rates and β = 0 are untouched; the first pass carries no gradient."""
    model = _model()
    y, uv = torch.rand(3, 1, 64, 64) * 255, torch.rand(3, 2, 32, 32) * 255
    rates = torch.tensor([11, 0, HI_FROM])
    with torch.no_grad():
        plain = model.analysis(y, uv, rates)
        model.pre_emphasis = 0.3
        got = model.analysis(y, uv, rates)
        a = model.luma_analysis_hi(y), model.chroma_analysis_hi(vm_codec.vm33.chroma_analysis_input(y, uv))
        y_rec, uv_rec = model.synthesis["bop"](*a, y.shape[-2:])
        y2, uv2 = y + 0.3 * (y - y_rec.clamp(0, 255)), uv + 0.3 * (uv - uv_rec.clamp(0, 255))
        want = model.luma_analysis_hi(y2), model.chroma_analysis_hi(vm_codec.vm33.chroma_analysis_input(y2, uv2))
    for g, w, p in zip(got, want, plain):
        for i in (0, 2):  # high-rate pictures: from the pre-emphasised picture
            torch.testing.assert_close(g[i], w[i], rtol=1e-5, atol=1e-4)
            assert not torch.allclose(g[i], p[i])
        assert torch.equal(g[1], p[1])  # rate point 0: the shared analysis, as before
    model.zero_grad()
    y_lat, c_lat = model.analysis(y[:1], uv[:1], torch.tensor([11]))
    (y_lat.sum() + c_lat.sum()).backward()
    assert model.luma_analysis_hi.out.weight.grad is not None
    assert all(p.grad is None for p in model.synthesis["bop"].parameters())  # S(A(x)) is a constant


def test_gradients_reach_only_the_analysis_that_ran():
    model = _model()
    y, uv = torch.rand(2, 1, 64, 64) * 255, torch.rand(2, 2, 32, 32) * 255
    y_lat, c_lat = model.analysis(y, uv, torch.tensor([0, 1]))
    (y_lat.sum() + c_lat.sum()).backward()
    assert model.luma_analysis.out.weight.grad is not None
    assert model.luma_analysis_hi.out.weight.grad is None and model.chroma_analysis_hi.out.weight.grad is None


def test_a_checkpoint_without_it_loads_with_a_copy_of_the_shared_analysis():
    plain = vm_codec.VMCodec(pretrained=False)
    ck = {"meta": {"rate_lambdas": list(vm_codec.VM_RATE_LAMBDAS)},
          "state_dict": {k: v.half() for k, v in plain.state_dict().items()}}
    model = vm_codec.from_checkpoint(ck, analysis_hi_from=HI_FROM)
    assert model.analysis_hi_from == HI_FROM
    for k, v in model.luma_analysis.state_dict().items():
        assert torch.equal(model.luma_analysis_hi.state_dict()[k], v), k
    # ... and the meta of a checkpoint with one builds it, an override of None drops it
    ck_hi = {"meta": {**ck["meta"], "analysis_hi_from": HI_FROM}, "state_dict": model.state_dict()}
    assert vm_codec.from_checkpoint(ck_hi).analysis_hi_from == HI_FROM
    assert not hasattr(vm_codec.from_checkpoint(ck_hi, analysis_hi_from=None), "luma_analysis_hi")


@pytest.mark.parametrize("bad", [0, len(vm_codec.VM_RATE_LAMBDAS)])
def test_the_first_high_rate_point_must_leave_both_analyses_a_rate(bad):
    with pytest.raises(ValueError):
        vm_codec.VMCodec(pretrained=False, analysis_hi_from=bad)


def test_export_writes_both_analyses():
    from training import export_vm

    names = set(export_vm.graphs(_model()))
    assert {"analysis_luma_hi", "analysis_chroma_hi", "analysis_luma", "analysis_chroma"} <= names
    assert not any(n.endswith("_hi") for n in export_vm.graphs(vm_codec.VMCodec(pretrained=False)))


def test_a_graft_shares_the_decoder_tensors_and_nothing_else_may_differ():
    """export_vm --calibration-checkpoint: a graft's model.bin is calibrated with the checkpoint its decoder tensors
    come from; that is allowed only when the two differ in encoder-only tensors (analyses, hyper encoders)."""
    from training import export_vm

    base, graft = _model(), _model()
    with torch.no_grad():
        graft.luma_analysis_hi.out.weight.mul_(1.1)
        graft.chroma.hyper_encoder.state_dict()[next(iter(graft.chroma.hyper_encoder.state_dict()))].add_(0.5)
    assert export_vm.decoder_tensors_equal(base, graft)
    with torch.no_grad():
        next(graft.context_model.parameters()).add_(1e-3)
    assert not export_vm.decoder_tensors_equal(base, graft)
    assert export_vm.decoder_tensors_equal(base, _model(hi_from=None))  # a second analysis is encoder-only too


# ---------------------------------------------------------------------------------------------- runtime


def _scaled_graph(src, dst, factor):
    """The analysis graph with its output multiplied by ``factor``: a stand-in second analysis."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    out = m.graph.output[0].name
    for node in m.graph.node:
        node.output[:] = [f"{o}_unscaled" if o == out else o for o in node.output]
    m.graph.initializer.append(numpy_helper.from_array(np.array(factor, np.float32), "hi_factor"))
    m.graph.node.append(helper.make_node("Mul", [f"{out}_unscaled", "hi_factor"], [out]))
    onnx.save(m, str(dst))


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """(vm33 with one analysis, vm33 with a stand-in second analysis from HI_FROM on: the shared one x 1.25)."""
    if not (VM33 / "model.bin").is_file():
        pytest.skip("vm33 is not exported")
    root = tmp_path_factory.mktemp("models")
    plain, hi = root / "vm33_plain", root / "vm33_hi"
    shutil.copytree(VM33, plain)
    card = json.loads((plain / "model_card.json").read_text())
    card["analysis_hi_from"] = None
    card["analysis_hi_pre_emphasis"] = 0.0  # one analysis pass here: tests/test_pre_emphasis.py has the second
    for comp in ("luma", "chroma"):
        (plain / f"analysis_{comp}_hi.onnx").unlink(missing_ok=True)
    (plain / "model_card.json").write_text(json.dumps(card))
    shutil.copytree(plain, hi)
    for comp in ("luma", "chroma"):
        _scaled_graph(hi / f"analysis_{comp}.onnx", hi / f"analysis_{comp}_hi.onnx", 1.25)
    card["analysis_hi_from"] = HI_FROM
    (hi / "model_card.json").write_text(json.dumps(card))
    return plain, hi


@pytest.fixture(scope="module")
def hi_model_dir(model_dirs):
    return model_dirs[1]


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[64:192, 128:320])  # 128 x 192: whole chroma latents


@requires_model
def test_the_encoder_picks_the_graph_by_rate_point(model_dirs, photo):
    import jpegai_fast
    from jpegai_fast import colour, encoder

    plain_dir, hi_dir = model_dirs
    k = HI_FROM
    enc = encoder.Encoder(hi_dir, threads=1)
    m = enc.model
    assert m.analysis_graph("luma", k - 1) == "analysis_luma" and m.analysis_graph("chroma", k) == "analysis_chroma_hi"
    y, uv = colour.rgb_to_yuv420(photo)
    hw = m.latent_size("luma", photo.shape[:2])
    lo, hi = (encoder._analyse(m, y, uv, hw, rate=r) for r in (k - 1, k))
    for comp in ("luma", "chroma"):
        assert lo[comp].shape == hi[comp].shape
        np.testing.assert_allclose(hi[comp], 1.25 * lo[comp], rtol=1e-5, atol=1e-4)
    # the shared analysis below k, the other one from k on: the same decoder takes both streams
    plain = encoder.Encoder(plain_dir, threads=1)
    assert plain.encode(photo, rate_point=k - 1) == enc.encode(photo, rate_point=k - 1)
    stream = enc.encode(photo, rate_point=k)
    assert stream != plain.encode(photo, rate_point=k)
    assert jpegai_fast.decode(stream).shape == photo.shape


@requires_model
def test_rate_control_across_the_switch(hi_model_dir, photo):
    from jpegai_fast import encoder

    enc = encoder.Encoder(hi_model_dir, threads=1)
    sizes = {r: 8 * len(enc.encode(photo, rate_point=r)) / photo[..., 0].size for r in (HI_FROM - 1, HI_FROM)}
    target = max(sizes.values()) * 1.05
    got = 8 * len(enc.encode(photo, bpp=target)) / photo[..., 0].size
    assert 0.8 * target <= got <= target


@requires_model
@pytest.mark.parametrize("card_value,drop,error", [(HI_FROM, "analysis_chroma_hi.onnx", FileNotFoundError),
                                                   (0, None, ValueError), (True, None, ValueError)])
def test_a_card_the_directory_cannot_serve_is_refused(hi_model_dir, tmp_path, card_value, drop, error):
    from jpegai_fast.model import Model

    d = tmp_path / "broken"
    shutil.copytree(hi_model_dir, d)
    card = json.loads((d / "model_card.json").read_text())
    card["analysis_hi_from"] = card_value
    (d / "model_card.json").write_text(json.dumps(card))
    if drop:
        (d / drop).unlink()
    with pytest.raises(error):
        Model(d)


def test_train_only_the_high_rate_analysis():
    """--train-only analysis-hi: Adam holds the high-rate analysis alone, and nothing else gets a gradient."""
    from training.train import make_analysis_only_optimizer

    model = _model()
    opt = make_analysis_only_optimizer(model, 1e-4)
    hi = {id(p) for m in (model.luma_analysis_hi, model.chroma_analysis_hi) for p in m.parameters()}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == hi
    assert {id(p) for p in model.parameters() if p.requires_grad} == hi
    y, uv = torch.rand(2, 1, 64, 64) * 255, torch.rand(2, 2, 32, 32) * 255
    y_rec, uv_rec, bits = model(y, uv, torch.tensor([HI_FROM, 11]))
    (y_rec.mean() + uv_rec.mean() + bits.mean()).backward()
    assert all(p.grad is not None for m in (model.luma_analysis_hi,) for p in m.parameters())
    assert all(p.grad is None for n, p in model.named_parameters() if id(p) not in hi), "a fixed tensor got a gradient"


def test_train_only_the_shared_analysis():
    """--train-only analysis-lo: Adam holds the shared analysis alone (the low rate points' encoder)."""
    from training.train import make_analysis_only_optimizer

    model = _model()
    opt = make_analysis_only_optimizer(model, 1e-4, "lo")
    lo = {id(p) for m in (model.luma_analysis, model.chroma_analysis) for p in m.parameters()}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == lo
    assert {id(p) for p in model.parameters() if p.requires_grad} == lo
    y, uv = torch.rand(2, 1, 64, 64) * 255, torch.rand(2, 2, 32, 32) * 255
    y_rec, uv_rec, bits = model(y, uv, torch.tensor([0, HI_FROM - 1]))
    (y_rec.mean() + uv_rec.mean() + bits.mean()).backward()
    assert all(p.grad is not None for p in model.luma_analysis.parameters())
    assert all(p.grad is None for n, p in model.named_parameters() if id(p) not in lo), "a fixed tensor got a gradient"
