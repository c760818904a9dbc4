"""Greedy layer-wise training (Hinton, Osindero & Teh 2006), the one place it is written: a stack
of layers trained bottom-up, each by the training loop on the activities of the layer below, as
stages of a run.

``greedy_stages`` yields one ``Stage`` per layer and computes the next layer's data only once the
layer below is trained (or restored on resume). The stacks of the library build on it:
``dbn_stages`` (a deep belief net's RBMs), ``autoencoder_stages`` (Hinton & Salakhutdinov's RBM
pretraining, then fine-tuning of the unrolled network) and ``dbm_stages`` (Salakhutdinov &
Hinton's pretraining with tied copies, then joint training of the DBM).

References: Hinton, Osindero & Teh (2006), A fast learning algorithm for deep belief nets;
Hinton & Salakhutdinov (2006), Reducing the dimensionality of data with neural networks;
Salakhutdinov & Hinton (2009), Deep Boltzmann machines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..models.autoencoder import DeepAutoencoder, GaussianHiddenRBM
from ..models.base import Model
from ..models.classifier import DBNClassifier
from ..models.dbm import DeepBoltzmannMachine
from ..models.dbn import DeepBeliefNet
from ..models.rbm import BernoulliRBM
from ..objectives.autoencoder import GaussianHiddenCD
from ..objectives.base import Objective
from ..objectives.classification import classifier_rows
from ..objectives.contrastive import ContrastiveDivergence
from ..objectives.dbm import TiedCopiesCD, copies_for_layer
from ..samplers.base import bernoulli_draw
from .config import TrainConfig
from .loop import EpochCallback, TrainResult
from .stages import Stage, run_stages

Propagate = Literal["probabilities", "samples"]
#: How trained layer i turns its input into the next layer's data: (i, layer, x) -> data.
Propagator = Callable[[int, nn.Module, torch.Tensor], torch.Tensor]


@torch.no_grad()
def propagate_up(
    layer: nn.Module,
    x: torch.Tensor,
    mode: Propagate = "probabilities",
    generator: torch.Generator | None = None,
    batch_size: int = 10_000,
) -> torch.Tensor:
    """The data for the next layer of a greedy stack: ``layer.transform(x)`` (p(h = 1 | v) for a
    Bernoulli RBM, E[h | v] for Gaussian hidden units), or one Bernoulli sample of it."""
    if mode not in ("probabilities", "samples"):
        raise ValueError(f"propagate: expected 'probabilities' or 'samples', got {mode!r}")
    out = torch.cat([layer.transform(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return bernoulli_draw(out, generator) if mode == "samples" else out


def per_layer_configs(configs: TrainConfig | Sequence[TrainConfig], n: int) -> list[TrainConfig]:
    """One config per layer: a single config is repeated with its seed offset by the layer."""
    if isinstance(configs, TrainConfig):
        return [dataclasses.replace(configs, seed=configs.seed + i) for i in range(n)]
    configs = list(configs)
    if len(configs) != n or not all(isinstance(c, TrainConfig) for c in configs):
        raise ValueError(f"configs: expected a TrainConfig or {n} of them")
    return configs


def greedy_stages(
    layers: Sequence[Model],
    x: torch.Tensor,
    configs: TrainConfig | Sequence[TrainConfig],
    objectives: Sequence[Objective],
    propagate: Propagate | Propagator = "probabilities",
    seed: int = 0,
    prefix: str = "layer",
    settings: str = "",
) -> Iterator[Stage]:
    """Stages ``{prefix}1``, ``{prefix}2``, ...: layer i trained with ``objectives[i]`` on the
    activities of layer i-1 (``propagate``: "probabilities", "samples" drawn once with ``seed``,
    or a function (i, layer, x) -> next data), the first on ``x``."""
    layers = list(layers)
    if not layers:
        raise ValueError("layers: expected at least one layer to train")
    if len(objectives) != len(layers):
        raise ValueError(
            f"objectives: expected one per layer ({len(layers)}), got {len(objectives)}"
        )
    configs = per_layer_configs(configs, len(layers))
    if isinstance(propagate, str) and propagate not in ("probabilities", "samples"):
        raise ValueError(f"propagate: expected 'probabilities' or 'samples', got {propagate!r}")
    generator = torch.Generator(device=x.device).manual_seed(seed)
    data = x
    for i, (layer, objective, config) in enumerate(zip(layers, objectives, configs)):
        sizes = _layer_sizes(layer)
        yield Stage(f"{prefix}{i + 1}", layer, objective, data, config, sizes, settings)
        if i + 1 == len(layers):
            return
        layer.to(data.device)
        if callable(propagate):
            with torch.no_grad():
                data = propagate(i, layer, data)
        else:
            if generator.device != data.device:
                generator = torch.Generator(device=data.device).manual_seed(seed + i + 1)
            data = propagate_up(layer, data, propagate, generator)


def _layer_sizes(layer: nn.Module) -> str:
    W = getattr(layer, "W", None)
    return f"{type(layer).__name__} {W.shape[0]} -> {W.shape[1]}" if W is not None else ""


def fit_greedy(
    layers: Sequence[Model],
    x: torch.Tensor,
    configs: TrainConfig | Sequence[TrainConfig],
    objectives: Sequence[Objective],
    propagate: Propagate = "probabilities",
    out_dir: str | Path | None = None,
    seed: int = 0,
    resume: bool = False,
) -> list[TrainResult | None]:
    """Train a stack greedily (``greedy_stages`` run by ``run_stages``); with ``out_dir`` every
    layer writes its checkpoint under ``out_dir/stages/`` and its records to ``metrics.jsonl``."""
    plan = greedy_stages(layers, x, configs, objectives, propagate, seed)
    return run_stages(None, plan, out_dir, resume=resume)


# ----- the stacks of the library ------------------------------------------------------------------
def dbn_stages(
    model: DeepBeliefNet,
    x: torch.Tensor,
    config: TrainConfig | Sequence[TrainConfig],
    method: Literal["cd", "pcd"] = "cd",
    k: int = 1,
    n_chains: int = 100,
    centering: bool = False,
    propagate: Propagate = "probabilities",
    seed: int = 0,
    init_from_below: bool = False,
) -> Iterator[Stage]:
    """The RBMs of a DBN bottom-up, each with CD-k or PCD-k; later layers see probabilities in
    [0, 1] (or binary samples). The DBN is its RBMs, so training them trains the model.

    ``init_from_below``: every RBM above the first starts, once the one below is trained, as that
    one turned upside down (``DeepBeliefNet.init_from_below``, Hinton, Osindero & Teh 2006), so
    the stack starts equal to the stack below it; its visible biases are then kept (not reset
    from the data marginals) and its persistent chains start at rows of its data, which are
    draws from its initial marginal when the layer below fits. Every layer k+1 needs at least
    as many units as layer k-1."""
    x = model.check_visible(x, "x", binary=False)
    if x.min() < 0 or x.max() > 1:
        raise ValueError("x: a DBN models binary data; expected values in [0, 1]")
    if init_from_below:
        sizes = model.layer_sizes
        short = [k + 1 for k in range(1, model.n_layers) if sizes[k + 1] < sizes[k - 1]]
        if short:
            j = short[0]
            raise ValueError(
                f"init_from_below: layer_sizes[{j}] = {sizes[j]} is smaller than "
                f"layer_sizes[{j - 2}] = {sizes[j - 2]}; initializing an RBM from the one below "
                "needs layer_sizes[k + 1] >= layer_sizes[k - 1]"
            )
    objectives = [
        ContrastiveDivergence(
            k=k,
            method=method,
            n_chains=n_chains,
            centering=centering,
            binary_data=False,
            init_visible_bias=not (init_from_below and i > 0),
            # an RBM started from the one below already has the data's distribution as its
            # marginal: its persistent chains start at data rows, not at the base rate
            chains_start="data" if init_from_below and i > 0 else "base-rate",
            seed=seed + i,
        )
        for i in range(model.n_layers)
    ]
    plan = greedy_stages(model.rbms, x, config, objectives, propagate, seed)
    return _initialized_from_below(model, plan) if init_from_below else plan


def _initialized_from_below(model: DeepBeliefNet, plan: Iterator[Stage]) -> Iterator[Stage]:
    """The stages of ``plan`` (one per RBM, bottom-up), each RBM above the first initialized from
    the one below when its stage comes, i.e. once the one below is trained (or restored)."""
    for i, stage in enumerate(plan):
        if i > 0:
            model.rbms[i].to(model.rbms[i - 1].W.device)
            model.init_from_below(i)
        yield stage


def autoencoder_stages(
    model: DeepAutoencoder,
    objective: Objective,
    x: torch.Tensor,
    config: TrainConfig,
    pretrain_epochs: int = 50,
    lr: float = 0.1,
    code_lr: float = 0.001,
    batch_size: int = 100,
    method: Literal["cd", "pcd"] = "cd",
    weight_decay: float = 2e-4,
    seed: int = 0,
    settings: str = "--pretrain-epochs, --pretrain-lr, --code-lr, --pretrain-batch-size",
) -> Iterator[Stage]:
    """Hinton & Salakhutdinov (2006): RBM pretraining of every layer (CD-1, SGD with momentum 0.5
    then 0.9 after 5 epochs, weight decay 2e-4 on W, ``lr``, and ``code_lr`` for the linear code
    layer), the stack unrolled into the network, then fine-tuning (stage "finetune") with
    ``objective`` and ``config``. ``pretrain_epochs`` = 0 fine-tunes from the random start.
    ``settings`` names the flags the pretraining stages' settings come from (for their
    announcement)."""
    x = model.check_input(x)
    if pretrain_epochs > 0:
        rbms = model.rbm_stack(seed=seed)
        objectives: list[Objective] = [
            GaussianHiddenCD()
            if isinstance(rbm, GaussianHiddenRBM)
            else ContrastiveDivergence(method=method, binary_data=False, seed=seed + i)
            for i, rbm in enumerate(rbms)
        ]
        configs = [
            _sgd_config(
                config,
                pretrain_epochs,
                batch_size,
                code_lr if isinstance(rbm, GaussianHiddenRBM) else lr,
                weight_decay,
                seed + i,
            )
            for i, rbm in enumerate(rbms)
        ]
        yield from greedy_stages(
            rbms, x, configs, objectives, "probabilities", seed, "pretrain", settings
        )
        model.to(x.device)
        model.init_from_rbms(rbms)
    yield Stage("finetune", model, objective, x, config, "the unrolled network")


def dbm_stages(
    model: DeepBoltzmannMachine,
    objective: Objective,
    x: torch.Tensor,
    config: TrainConfig,
    pretrain: TrainConfig | None = None,
    k: int = 1,
    seed: int = 0,
) -> Iterator[Stage]:
    """Salakhutdinov & Hinton (2009): with ``pretrain``, RBMs trained bottom-up with tied copies
    (``TiedCopiesCD``: the bottom one with two copies of its hidden layer, the top one with two
    copies of its visible layer), composed into the DBM (``compose``); then joint training
    (stage "train") with ``objective`` and ``config``."""
    if pretrain is not None and pretrain.epochs > 0:
        rbms = [
            BernoulliRBM(
                model.layer_sizes[l], model.layer_sizes[l + 1], init_std=0.01, seed=seed + l
            )
            for l in range(model.n_layers)
        ]
        objectives = []
        for l in range(model.n_layers):
            r_v, r_h = copies_for_layer(l, model.n_layers)
            objectives.append(TiedCopiesCD(visible_copies=r_v, hidden_copies=r_h, k=k))
        settings = "--pretrain-epochs, --pretrain-lr, --pretrain-k"
        data = x.to(model.weights[0])

        def tied(i: int, layer: nn.Module, v: torch.Tensor) -> torch.Tensor:
            return objectives[i].p_h(layer, v)  # p(h | v) with the layer's tied copies

        yield from greedy_stages(rbms, data, pretrain, objectives, tied, seed, "pretrain", settings)
        model.init_from_rbms(rbms)
    yield Stage("train", model, objective, x, config, "joint training of the DBM")


def _sgd_config(
    base: TrainConfig, epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int
) -> TrainConfig:
    """Pretraining settings of Hinton's code: SGD, momentum 0.5 for 5 epochs then 0.9."""
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer="sgd",
        momentum=0.9,
        initial_momentum=0.5,
        momentum_warmup_epochs=5,
        weight_decay=weight_decay,
        seed=seed,
        device=base.device,
        progress=base.progress,
    )


__all__ = [
    "autoencoder_stages",
    "dbm_stages",
    "dbn_stages",
    "fit_greedy",
    "greedy_stages",
    "per_layer_configs",
    "propagate_up",
]


# ----- the DBN classifier (Hinton, Osindero & Teh 2006; Erhan et al. 2010) ---------------------
def classifier_stages(
    model: DBNClassifier,
    objective: Objective,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    pretrain_epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 100,
    method: Literal["cd", "pcd"] = "cd",
    k: int = 1,
    weight_decay: float = 2e-4,
    seed: int = 0,
    epoch_callback: EpochCallback | None = None,
) -> Iterator[Stage]:
    """Greedy pretraining of the classifier's hidden layers, then fine-tuning by backpropagation.

    With ``pretrain_epochs`` > 0: the RBMs of a DBN with the classifier's hidden sizes, trained
    bottom-up on ``x`` by ``dbn_stages`` (stages ``layer1``, ``layer2``, ...: CD-k or PCD-k on
    the probabilities of the layer below, SGD with momentum 0.5 then 0.9 after 5 epochs, weight
    decay ``weight_decay`` on W, ``lr``, ``batch_size``, ``pretrain_epochs`` each), unrolled
    into the classifier (``DBNClassifier.init_from_rbms``: layer k computes RBM k's
    p(h = 1 | v)). Then stage ``finetune``: ``objective`` on the rows [x, e_y] with ``config``
    and ``epoch_callback``, the same stage whether or not pretraining ran
    (``pretrain_epochs`` = 0 fine-tunes from the random start with the same budget)."""
    x = model.check_input(x)
    rows = classifier_rows(x, y, model.n_classes)
    if pretrain_epochs > 0:
        if model.n_layers == 0:
            raise ValueError(
                "pretrain_epochs: a classifier without hidden layers has no RBM to pretrain; pass 0"
            )
        dbn = DeepBeliefNet(model.layer_sizes, seed=seed)
        pretrain = _sgd_config(config, pretrain_epochs, batch_size, lr, weight_decay, seed)
        settings = "--pretrain-epochs, --pretrain-lr, --pretrain-batch-size"
        for stage in dbn_stages(dbn, x, pretrain, method=method, k=k, seed=seed):
            yield dataclasses.replace(stage, settings=settings)
        model.to(x.device)
        model.init_from_rbms(list(dbn.rbms))
    yield Stage(
        "finetune",
        model,
        objective,
        rows,
        config,
        "the unrolled network and its softmax output",
        epoch_callback=epoch_callback,
    )


__all__ += ["classifier_stages"]
