"""The CPU recipe's feature cache (training/latent_cache.py): the frozen analysis head's features, cut with the
pixels, must give through the trainable tail exactly the latents the whole analysis gives for those pixels."""
from __future__ import annotations

import pathlib

import pytest

torch = pytest.importorskip("torch")

from training import latent_cache, vm33  # noqa: E402
from training.colour import rgb_to_yuv420  # noqa: E402


def _analyses():
    torch.manual_seed(0)
    return vm33.Analysis(1, vm33.LUMA_LATENT).eval(), vm33.Analysis(3, vm33.CHROMA_LATENT).eval()


@pytest.mark.parametrize("tail", [0, 1, 2, 3, 5])
def test_head_then_tail_is_the_analysis(tail):
    luma, _ = _analyses()
    x = torch.rand(1, 1, 64, 96) * 255
    with torch.no_grad():
        assert torch.equal(luma.tail(luma.head(x, tail), tail), luma(x))


def test_pool_features_through_the_tail_are_the_latents(monkeypatch):
    luma, chroma = _analyses()
    rgb = (torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 255).round().to(torch.uint8)
    monkeypatch.setattr(latent_cache, "_load_rgb", lambda i: rgb[i])
    tail = 2
    images, fl, fc = latent_cache.build([0], luma, chroma, tail)
    assert fl.shape[-1] == 128 // 8 and fc.shape[-1] == 128 // 16 and fl.dtype == torch.float16
    pool = latent_cache.LatentPool.__new__(latent_cache.LatentPool)
    pool.images, pool.y_luma, pool.y_chroma, pool.tail = images, fl, fc, tail
    pool.step_luma, pool.step_chroma = 8, 16
    crops, yf, cf = pool.batch(4, 64, torch.Generator().manual_seed(2))
    with torch.no_grad():
        y_lat, c_lat = luma.tail(yf, tail), chroma.tail(cf, tail)
        y, uv = rgb_to_yuv420(images.float())
        full_luma = luma.tail(luma.head(y, tail).half().float(), tail)  # the cache keeps float16 features
        full_chroma = chroma.tail(chroma.head(vm33.chroma_analysis_input(y, uv), tail).half().float(), tail)
    assert y_lat.shape[-2:] == (4, 4) and c_lat.shape[-2:] == (2, 2)
    for i in range(4):
        t, left = next((t, x) for t in (0, 32, 64) for x in (0, 32, 64)
                       if torch.equal(images[0, :, t:t + 64, x:x + 64].float(), crops[i]))
        # the stride-2 conv reads one feature beyond the crop: compare the latents off the crop's border
        inner = full_luma[0, :, t // 16 + 1:t // 16 + 3, left // 16 + 1:left // 16 + 3]
        assert torch.allclose(y_lat[i, :, 1:3, 1:3], inner, atol=1e-4)
        inner = full_chroma[0, :, t // 32 + 1:t // 32 + 2, left // 32 + 1:left // 32 + 2]
        assert torch.allclose(c_lat[i, :, 1:, 1:], inner, atol=1e-4)


def test_head_state_covers_only_the_frozen_stages():
    luma, chroma = _analyses()
    frozen = latent_cache.head_state(luma, chroma, 2)
    assert not any(k.startswith(("l.3.", "l.4.", "c.3.", "c.4.")) for k in frozen)
    assert any(k.startswith("l.2.") for k in frozen)
    before = latent_cache.fingerprint([pathlib.Path("a")], frozen)
    with torch.no_grad():
        luma.out.weight.add_(1.0)  # a tail weight: the cache stays valid
    assert latent_cache.fingerprint([pathlib.Path("a")], latent_cache.head_state(luma, chroma, 2)) == before
    with torch.no_grad():
        luma.blocks[0].down.weight.add_(1.0)
    assert latent_cache.fingerprint([pathlib.Path("a")], latent_cache.head_state(luma, chroma, 2)) != before


def test_unfreezing_a_stage_keeps_the_adam_state_of_the_rest():
    """A recipe that trains one more analysis stage (tail 2 -> 3) keeps every moment estimate it had; only
    the newly trained stage starts fresh (and train.main warms up)."""
    from training import train, vm_codec

    torch.manual_seed(0)
    model = vm_codec.VMCodec(pretrained=False)
    old = train.make_optimizer(model, "bop", 1e-4, frozen_analysis=True, analysis_tail=2)
    for group in old.param_groups:
        for p in group["params"]:
            p.grad = torch.full_like(p, 0.5)
    old.step()
    saved = old.state_dict()
    new = train.make_optimizer(model, "bop", 1e-4, frozen_analysis=True, analysis_tail=3)
    with pytest.raises(ValueError):  # what load_checkpoint tries first
        train.make_optimizer(model, "bop", 1e-4, True, 3).load_state_dict(saved)
    kept, total = train.transfer_optimizer_state(new, saved, train.param_groups(model, "bop", 2))
    old_params = [p for g in old.param_groups for p in g["params"]]
    newly_trained = list(model.luma_analysis.stages()[2].parameters())
    assert kept == len(old_params) and total == kept + len(newly_trained) + len(
        list(model.chroma_analysis.stages()[2].parameters()))
    for p in old_params:
        assert torch.equal(new.state[p]["exp_avg"], old.state[p]["exp_avg"])
    assert all(p not in new.state and p.requires_grad for p in newly_trained)
    assert not any(p.requires_grad for p in model.luma_analysis.stages()[1].parameters())
