"""vm33's SOP synthesis (training/vm_codec.py): the lighter decoder of the same latent, trained beside BOP.

A checkpoint from before the SOP existed loads with the SOP pruned from its own BOP, and the SOP's loss
moves only the SOP synthesis: it decodes the BOP's latent, never shapes it."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training import train, vm33, vm_codec  # noqa: E402


def _model():
    torch.manual_seed(0)
    return vm_codec.VMCodec(pretrained=False)


def test_a_bop_only_state_dict_gets_its_sop_pruned_from_its_bop():
    source = _model()
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("synthesis.sop.")}
    loaded = vm_codec.VMCodec(pretrained=False)
    loaded.load_state_dict(state)
    expect = vm_codec.VMSynthesis(pretrained=False, op="sop")
    vm_codec.sop_from_bop(source.synthesis["bop"], expect)
    for k, v in expect.state_dict().items():
        assert torch.equal(loaded.synthesis["sop"].state_dict()[k], v), k
    sop = loaded.synthesis["sop"].luma
    assert sop.out.weight.shape[1] == vm_codec.SOP_WIDTH and sop.mid.up.weight.shape[:2] == (32, 32)


def test_pruned_channels_are_copied_not_invented():
    bop = vm33.Synthesis(vm33.LUMA_LATENT, 96, 64, 16)
    sop = vm33.Synthesis(vm33.LUMA_LATENT, 96, vm_codec.SOP_WIDTH, 16)
    vm_codec.prune_synthesis(bop, sop)
    keep = vm_codec._kept_channels(bop, vm_codec.SOP_WIDTH)
    assert len(set(keep.tolist())) == vm_codec.SOP_WIDTH
    assert torch.equal(sop.up2.up.weight, bop.up2.up.weight[:, keep])
    assert torch.equal(sop.mid.up.weight, bop.mid.up.weight[keep][:, keep])
    assert torch.equal(sop.res.weight, bop.res.weight)


def test_the_sop_loss_moves_only_the_sop_synthesis():
    model = _model()
    opt = train.make_optimizer(model, "bop", 1e-4, frozen_analysis=False, joint_sop=True)
    assert len(opt.param_groups) == 4
    sop_ids = {id(p) for p in model.synthesis["sop"].parameters()}
    assert {id(p) for p in opt.param_groups[3]["params"]} == sop_ids
    assert not sop_ids & {id(p) for g in opt.param_groups[:3] for p in g["params"]}
    y = torch.rand(1, 1, 64, 64) * 255
    uv = torch.rand(1, 2, 32, 32) * 255
    y_hat, c_hat, _ = model.code_latents(*model.analysis(y, uv), torch.tensor([3]))
    y_sop, uv_sop = model.synthesis["sop"](y_hat.detach(), c_hat.detach(), y.shape[-2:])
    ((y_sop - y) ** 2).mean().add(((uv_sop - uv) ** 2).mean()).backward()
    for name, p in model.named_parameters():
        moved = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert moved == name.startswith("synthesis.sop."), name


@pytest.mark.parametrize("joint_sop", [True, False])
def test_the_analysis_gets_a_group_of_its_own_at_its_lr_and_resumes(joint_sop):
    """--analysis-lr-mult: the encoder's parameters move to a last group at that multiple of the lr; a saved
    optimizer of either layout is read back as the layout it has, and its Adam state carries across."""
    model = _model()
    plain = train.make_optimizer(model, "bop", 1e-4, frozen_analysis=False, joint_sop=joint_sop)
    split = train.make_optimizer(model, "bop", 1e-4, frozen_analysis=False, joint_sop=joint_sop,
                                 analysis_lr_mult=4.0)
    assert len(split.param_groups) == len(plain.param_groups) + 1
    encoder_ids = {id(p) for m in model.encoder_modules() for p in m.parameters()}
    assert {id(p) for p in split.param_groups[-1]["params"]} == encoder_ids
    assert split.param_groups[-1]["lr"] == pytest.approx(4e-4) and split.param_groups[-1]["lr_mult"] == 4.0
    assert not encoder_ids & {id(p) for g in split.param_groups[:-1] for p in g["params"]}
    assert sum(len(g["params"]) for g in split.param_groups) == sum(len(g["params"]) for g in plain.param_groups)
    assert train.saved_group_layout(plain.state_dict()) == (joint_sop, False)
    assert train.saved_group_layout(split.state_dict()) == (joint_sop, True)
    for p in model.parameters():  # one step so that every group has Adam state
        p.grad = torch.ones_like(p) if p.requires_grad else None
    plain.step()
    kept, total = train.transfer_optimizer_state(
        split, plain.state_dict(), train.param_groups(model, "bop", joint_sop=joint_sop))
    assert kept == total > 0
