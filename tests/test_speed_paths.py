"""Fast paths give the fp32 results: fused attention, bf16 autocast (training and inference), torch.compile."""

import functools
import re
import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from latentmed.dae import DAEObjective, DiffusionAutoencoder, ObjectiveConfig, preset_config
from latentmed.dae.presets import REFERENCE_DIFFERENCES
from latentmed.errors import LatentmedError
from latentmed.train import TrainConfig, train
from latentmed.train import accel

MICRO = dict(image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
             num_heads=2, dropout=0.0, z_dim=16, enc_channel_mult=(1, 2), enc_num_res_blocks=1,
             enc_attention_resolutions=(8,), schedule="sc-4", prediction="v")


def micro_dae(seed=0):
    torch.manual_seed(seed)
    dae = DiffusionAutoencoder(preset_config("tiny", **MICRO))
    with torch.no_grad():  # wake the zero-initialised output convs so the outputs depend on every layer
        for p in dae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return dae.eval()


def images(n=4, seed=1):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_every_attention_call_takes_the_fused_kernel():
    """Only the flash kernel allowed: SDPA raises 'No available kernel' if any q/k/v is strided in the last dim."""
    from latentmed.ldm.model import build_unet

    dae = micro_dae()
    x, t = images(), torch.full((4,), 0.5)
    unet = build_unet(latent_channels=4, latent_size=8, cross_attention_dim=16, block_out_channels=(16, 32),
                      norm_num_groups=8).eval()
    zl, tokens = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 16)
    with torch.no_grad():
        ref = (dae.unet(x, t, dae.encoder(x)), dae.encoder(x), unet(zl, 10, tokens).sample)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            fused = (dae.unet(x, t, dae.encoder(x)), dae.encoder(x), unet(zl, 10, tokens).sample)
        with sdpa_kernel(SDPBackend.MATH):
            math = (dae.unet(x, t, dae.encoder(x)), dae.encoder(x), unet(zl, 10, tokens).sample)
    for a, b, c in zip(ref, fused, math):
        assert torch.equal(a, b)  # the default choice is the fused kernel
        assert torch.allclose(b, c, atol=1e-5)  # and it computes what the math kernel does


def test_bf16_inference_keeps_fp32_arithmetic_and_stays_close():
    dae, x = micro_dae(), images()
    z32 = dae.encode(x)
    x_T32 = dae.encode_stochastic(x, z32, steps=5)
    rec32 = dae.decode(z32, x_T32, steps=5)
    dae.set_inference("bf16")
    z16 = dae.encode(x)
    x_T16 = dae.encode_stochastic(x, z16, steps=5)
    rec16 = dae.decode(z16, x_T16, steps=5)
    assert z16.dtype == x_T16.dtype == rec16.dtype == torch.float32
    assert not torch.equal(rec16, rec32)  # bf16 really ran
    assert torch.allclose(z16, z32, atol=0.05 * z32.abs().max().item())
    assert (rec16 - rec32).abs().mean() < 0.03  # images in [-1, 1]
    assert dae.set_inference("no") is dae and torch.equal(dae.decode(z32, x_T32, steps=5), rec32)
    with pytest.raises(LatentmedError, match="fp16 needs a GPU"):
        dae.set_inference("fp16")


class Images(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return images(1, seed=i)[0]


def _train(tmp_path, name, **cfg):
    model = micro_dae()
    model.train()
    result = train(model, DAEObjective(ObjectiveConfig(name="one-phase"), 4), Images(),
                   TrainConfig(steps=3, batch_size=4, log_every=1, checkpoint_every=0, progress=False, **cfg),
                   tmp_path / name, save_model=False)
    return [float(r["loss"]) for r in result.history], result


def test_bf16_training_on_cpu_is_finite_and_close_to_fp32(tmp_path):
    fp32, _ = _train(tmp_path, "fp32")
    bf16, _ = _train(tmp_path, "bf16", mixed_precision="bf16")
    assert len(bf16) == 3 and all(map(torch.isfinite, torch.tensor(bf16)))
    assert bf16 != fp32 and bf16 == pytest.approx(fp32, rel=0.05)
    with pytest.raises(LatentmedError, match="fp16 needs a GPU"):
        _train(tmp_path, "fp16", mixed_precision="fp16")


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile with dynamo's 'eager' backend: the graph capture runs, inductor's minutes of codegen do not."""
    monkeypatch.setattr(accel.torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_training_and_sampling_match_eager(tmp_path, eager_compile):
    eager, _ = _train(tmp_path, "eager")
    compiled, result = _train(tmp_path, "compiled", compile=True)
    assert compiled == pytest.approx(eager, rel=1e-5)
    assert not any("_orig_mod" in k for k in result.model.state_dict())  # checkpoints keep plain keys
    dae, x = micro_dae(), images()
    z = dae.encode(x)
    ref = dae.decode(z, x, steps=3)
    keys = set(dae.state_dict())
    out = dae.set_inference(compile=True).decode(z, x, steps=3)
    assert torch.allclose(out, ref, atol=1e-5) and set(dae.state_dict()) == keys


def test_compile_falls_back_with_a_clear_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(accel, "compiler_available", lambda device_type="cpu": (False, "no C++ compiler"))
    net = torch.nn.Linear(2, 2)
    with pytest.warns(UserWarning, match="no C.. compiler; running uncompiled"):
        assert accel.compile_module(net) is net
    monkeypatch.undo()
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no C++ compiler on PATH: the check says so, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        available, why = accel.compiler_available("cpu")
    assert not available and "no C++ compiler" in why
    (tmp_path / "g++").write_text("#!/bin/sh\n")
    (tmp_path / "g++").chmod(0o755)
    assert accel.compiler_available("cpu") == (True, "")


def test_reference_differences_quote_the_true_parameter_count():
    first = REFERENCE_DIFFERENCES["diffae-64"][0]
    ours = float(re.search(r"ours ([\d.]+)M", first).group(1))
    n = DiffusionAutoencoder(preset_config("diffae-64")).num_parameters()["total"]
    assert ours == round(n / 1e6, 1)


def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    from latentmed.config import from_dict
    from latentmed.dae import DAERunConfig

    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: True)
    assert accel.resolve_precision("auto", "cpu") == "bf16" and accel.resolve_precision("auto", "cuda") == "no"
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)
    assert accel.check_precision("auto", "cpu") == "no" and accel.check_precision("bf16", "cpu") == "bf16"
    # DAE runs default to auto, also when a YAML train section leaves the key out; other trainings to fp32
    assert DAERunConfig().train.mixed_precision == "auto" and TrainConfig().mixed_precision == "no"
    assert from_dict(DAERunConfig, {"train": {"steps": 5}}).train.mixed_precision == "auto"


def test_precision_lives_with_the_model_and_auto_means_the_same_everywhere(tmp_path, monkeypatch):
    from latentmed.dae import DAERunConfig, LatentDDIM, LatentDDIMConfig

    assert DAERunConfig().dae_config().precision == "auto"  # the run's train.mixed_precision goes into the model
    dae = micro_dae()
    dae.config.precision = "auto"
    dae.save_pretrained(tmp_path / "dae")
    loaded = DiffusionAutoencoder.from_pretrained(tmp_path / "dae").eval()
    assert loaded.config.precision == "auto"  # saved with the model, not read back from a training config
    z, x_T = loaded.encode(images()), torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    latent = LatentDDIM(LatentDDIMConfig(z_dim=16, hidden=8, num_layers=1, precision="auto"))
    with torch.no_grad():  # wake the zero-initialised output layer
        for p in latent.parameters():
            p.add_(0.05 * torch.randn_like(p))

    def outputs():
        return loaded.decode(z, x_T, steps=3), latent.sample(4, steps=3, generator=torch.Generator().manual_seed(0))

    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)  # auto = fp32 in training and in both models
    assert accel.check_precision("auto", "cpu") == "no"
    rec32, lat32 = outputs()
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: True)  # auto = bf16 in training and in both models
    assert accel.check_precision("auto", "cpu") == "bf16"
    rec16, lat16 = outputs()
    assert not torch.equal(rec16, rec32) and not torch.equal(lat16, lat32)  # both switched to bf16
    assert (rec16 - rec32).abs().mean() < 0.03 and rec16.dtype == lat16.dtype == torch.float32
    with pytest.raises(LatentmedError, match="precision must be one of"):
        LatentDDIMConfig(precision="half")
