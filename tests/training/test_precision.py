"""The loop's ``precision`` setting: bfloat16 autocast of the forward pass, TF32 on CUDA."""

import json

import pytest
import torch

from ebmlab.estimators import log_likelihood
from ebmlab.estimators.exact import exact_log_z
from ebmlab.io import load_checkpoint
from ebmlab.models import BernoulliRBM
from ebmlab.models.autoregressive import PixelCNN
from ebmlab.objectives import PersistentContrastiveDivergence
from ebmlab.objectives.likelihood import MaximumLikelihood
from ebmlab.training import PRECISIONS, TrainConfig, train


def binary_images(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 36, generator=g) < 0.3).float()


class RecordingPixelCNN(PixelCNN):
    """Records the dtype of the network's logits at every forward pass."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[torch.dtype] = []

    def _logit_maps(self, images):
        out = super()._logit_maps(images)
        self.seen.append(out.dtype)
        return out


def small_pixelcnn():
    torch.manual_seed(0)
    return RecordingPixelCNN(image_shape=(6, 6), channels=8, n_layers=2, first_kernel=3)


def fit(model, precision, epochs=2, **extra):
    config = TrainConfig(
        epochs=epochs, batch_size=16, lr=1e-2, seed=0, progress=False, precision=precision, **extra
    )
    return train(model, MaximumLikelihood(), binary_images(), config)


def test_precisions_listed_and_others_refused_by_name():
    assert PRECISIONS == ("float32", "bfloat16", "tf32")
    assert TrainConfig().precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="float16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
def test_tf32_needs_cuda_and_says_so():
    with pytest.raises(ValueError, match=r"precision: 'tf32' runs on CUDA"):
        fit(small_pixelcnn(), "tf32")


def test_bfloat16_runs_the_forward_pass_in_bfloat16_and_keeps_float32_state():
    full, half = small_pixelcnn(), small_pixelcnn()
    result = fit(full, "float32")
    result_half = fit(half, "bfloat16")
    assert set(full.seen) == {torch.float32}
    assert set(half.seen) == {torch.bfloat16}
    # parameters, gradients' destination and the optimizer state stay float32 ...
    assert all(p.dtype == torch.float32 for p in half.parameters())
    # ... the loss is a float32 number, and evaluation after training runs in float32
    assert all(isinstance(r["loss"], float) for r in result_half.history)
    half.seen.clear()
    log_p = half.log_prob(binary_images(4, seed=1))
    assert log_p.dtype == torch.float32 and half.seen == [torch.float32]
    # bfloat16 changes the arithmetic (the runs differ) but not the training (they stay close)
    a = torch.cat([p.detach().flatten() for p in full.parameters()])
    b = torch.cat([p.detach().flatten() for p in half.parameters()])
    assert not torch.equal(a, b)
    assert (a - b).norm() < 0.05 * a.norm()
    losses = [r["loss"] for r in result.history], [r["loss"] for r in result_half.history]
    assert abs(losses[0][-1] - losses[1][-1]) < 0.02 * abs(losses[0][-1])


def test_bfloat16_resume_repeats_the_uninterrupted_run(tmp_path):
    """Channels-last weights and their Adam moments are stored contiguous, load back, and the
    resumed run ends where the uninterrupted one does."""

    def config(epochs):
        return TrainConfig(
            epochs=epochs, batch_size=16, seed=0, progress=False, precision="bfloat16", lr=1e-2
        )

    whole = small_pixelcnn()
    train(whole, MaximumLikelihood(), binary_images(), config(3))
    part = small_pixelcnn()
    train(part, MaximumLikelihood(), binary_images(), config(2), tmp_path)
    loaded = load_checkpoint(tmp_path / "checkpoint.safetensors")
    for name, value in part.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], value, rtol=0, atol=0)
    result = train(
        loaded.model, MaximumLikelihood(), binary_images(), config(3), tmp_path, resume=True
    )
    assert result.step == 3 * 2
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], value, rtol=0, atol=0)


def _correlated_bits(n=256, d=12, seed=0):
    """Bits of rising density whose second half copies the first with 15% flips."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, d, generator=g) < torch.linspace(0.1, 0.9, d)).float()
    half = d // 2
    keep = torch.rand(n, half, generator=g) < 0.85
    x[:, half:] = torch.where(keep, x[:, :half], 1 - x[:, :half])
    return x


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_bfloat16_runs_the_rbm_update_with_bfloat16_products(monkeypatch, optimizer):
    """The RBM's hand-written update (fused with plain SGD, through autograd with Adam) takes
    autocast's dtype for its three products per PCD-1 step and nothing else: float32
    parameters, and the exact log-likelihood of the run equals the float32 run's (the seeds'
    spread of this setup is 0.0013 nats; the same seed's runs end 0.0000 apart) after a gain of
    more than a nat per example."""
    from ebmlab.objectives import contrastive

    seen = []
    product = contrastive._LowMatmul.mm

    def spy(self, a, b):
        seen.append((a.dtype, b.dtype))
        return product(self, a, b)

    monkeypatch.setattr(contrastive._LowMatmul, "mm", spy)
    data = _correlated_bits()
    results = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        rbm = BernoulliRBM(12, 6)
        before = log_likelihood(rbm, data, exact_log_z(rbm)).mean
        config = TrainConfig(
            epochs=30,
            batch_size=32,
            lr=0.05 if optimizer == "sgd" else 0.01,
            optimizer=optimizer,
            momentum=0.5,
            seed=0,
            progress=False,
            precision=precision,
        )
        result = train(rbm, PersistentContrastiveDivergence(k=1, n_chains=32), data, config)
        results[precision] = rbm, log_likelihood(rbm, data, exact_log_z(rbm)).mean
        if precision == "float32":
            assert seen == []
    assert seen and set(seen) == {(torch.bfloat16, torch.bfloat16)}
    assert len(seen) == 3 * result.step
    (full, ll_full), (half, ll_half) = results["float32"], results["bfloat16"]
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert not torch.equal(full.W, half.W)
    assert ll_full > before + 1.0
    assert abs(ll_half - ll_full) < 0.01


def test_precision_flag_is_recorded_and_kept_on_resume(tmp_path):
    from ebmlab.app.cli import main

    out = tmp_path / "run"
    argv = ["--threads", "1", "train", "pixelcnn", "--data", "digits", "--epochs", "1"]
    argv += ["--channels", "8", "--layers", "2", "--first-kernel", "3", "--precision", "bfloat16"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["precision"] == "bfloat16"
    resume = ["--threads", "1", "train", "pixelcnn", "--out", str(out), "--resume", "--epochs", "2"]
    assert main([*resume, "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "bfloat16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TF32 needs a CUDA device")
def test_tf32_is_on_while_training_and_off_afterwards():
    seen = []

    class Spy(MaximumLikelihood):
        def loss(self, model, batch, generator):
            seen.append(torch.backends.cuda.matmul.allow_tf32)
            return super().loss(model, batch, generator)

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    config = TrainConfig(epochs=1, batch_size=16, progress=False, precision="tf32", device="cuda")
    train(small_pixelcnn(), Spy(), binary_images(), config)
    assert seen and all(seen)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_bfloat16_on_a_gpu_without_it_is_refused_by_name(monkeypatch):
    from ebmlab.training.config import check_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "an old GPU")
    with pytest.raises(ValueError, match=r"precision: 'bfloat16' needs a GPU .*an old GPU"):
        check_precision("bfloat16", torch.device("cuda"))
    check_precision("bfloat16", torch.device("cpu"))  # the CPU always runs it
    check_precision("float32", torch.device("cuda"))
