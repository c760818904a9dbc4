# %% [markdown]
# # Lecture 002: deep neural generative models II
#
# [Lecture 002](../../lectures/#lecture-002) (Trivedi & Kondor, CMSC 35246) goes from linear
# latent-factor models to deep ones: probabilistic PCA and factor analysis fitted by EM, the
# RBM's conditionals and free energy with CD-k, the deep belief net trained greedily one layer at
# a time, and the deep autoencoder pretrained as a stack of RBMs, which beats PCA at the same
# code size. Everything here runs on the built-in 8x8 digits.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from ebmlab import data, estimators
from ebmlab.app import viz
from ebmlab.models import (
    PCA,
    BernoulliRBM,
    DeepAutoencoder,
    DeepBeliefNet,
    FactorAnalysis,
    ProbabilisticPCA,
)
from ebmlab.objectives import ContrastiveDivergence, ReconstructionObjective
from ebmlab.training import TrainConfig, run_stages, train
from ebmlab.training.greedy import autoencoder_stages, dbn_stages

# %matplotlib inline
torch.set_num_threads(1)
figures = Path(tempfile.mkdtemp())  # where the figure helpers write their PNGs


x, y = data.load("digits", "train")  # grey levels in [0, 1]
x_test, _ = data.load("digits", "test")

# %% [markdown]
# ## Probabilistic PCA and factor analysis by EM
#
# Both models draw a latent z ~ N(0, I_K) and emit x = W z + mu + eps with eps ~ N(0, Psi):
# PPCA has Psi = sigma^2 I (its maximum-likelihood solution is in closed form, from the top
# eigenvectors of the covariance), factor analysis a diagonal Psi, one noise level per pixel,
# fitted by EM. The E-step computes the posterior of z given x, the M-step refits W and Psi; the
# log-likelihood never decreases. EM for PPCA reaches the closed-form optimum.

# %%
closed = ProbabilisticPCA(64, 10).fit(x)
em = ProbabilisticPCA(64, 10).fit(x, method="em")
fa = FactorAnalysis(64, 10).fit(x)
with torch.no_grad():
    for name, model in (
        ("PPCA, closed form", closed),
        ("PPCA, EM", em),
        ("factor analysis, EM", fa),
    ):
        print(
            f"{name:>20}: test log-likelihood {model.log_prob(x_test).mean():8.2f} nats "
            f"(a density on grey levels)"
        )
plt.figure(figsize=(5, 3))
for name, model in (("PPCA", em), ("factor analysis", fa)):
    plt.plot(model.fit_result.log_likelihood, label=name)
plt.xscale("log")
plt.xlabel("EM iteration")
plt.ylabel("training log-likelihood per image")
plt.legend()
plt.show()
fa_samples = fa.sample(20, generator=torch.Generator().manual_seed(0), noise=False)
display(
    Image(
        viz.image_grid(
            fa_samples.clamp(0, 1),
            (8, 8),
            figures / "fa.png",
            nrow=10,
            title="factor analysis: W z + mu for z ~ N(0, I)",
        )
    )
)

# %% [markdown]
# ## The RBM: free energy and CD-k
#
# Summing the hidden units out of E(v, h) = -b^T v - c^T h - v^T W h gives the free energy
# F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j), so p(v) = exp(-F(v)) / Z. It agrees with the
# brute-force sum over all 2^H hidden states:

# %%
xb, _ = data.load("digits", "train", binarize="stochastic")
xb_test, _ = data.load("digits", "test", binarize="stochastic")
small = BernoulliRBM(64, 6, init_std=0.5, seed=0)
hidden = estimators.enumerate_states(6).float()  # all 64 hidden states
v = xb[:5]
with torch.no_grad():
    brute = -torch.logsumexp(
        -small.energy(v.repeat_interleave(64, 0), hidden.repeat(5, 1)).reshape(5, 64), 1
    )
    print("F(v) closed form:", small.free_energy(v).tolist())
    print("F(v) brute force:", brute.tolist())

# %% [markdown]
# CD-k estimates the likelihood gradient with k steps of block Gibbs sampling started at the
# data. More steps make the estimate less biased and the model better, at k times the cost. The
# exact test log-likelihood (16 hidden units: log Z by enumeration) after the same 10 epochs:

# %%
for k in (1, 3, 10):
    rbm = BernoulliRBM(64, 16, seed=0)
    train(
        rbm,
        ContrastiveDivergence(k=k, centering=True),
        xb,
        TrainConfig(
            epochs=10,
            batch_size=20,
            lr=0.05,
            optimizer="sgd",
            momentum=0.9,
            schedule="linear",
            progress=False,
        ),
    )
    ll = estimators.log_likelihood(rbm, xb_test, estimators.exact_log_z(rbm))
    print(f"CD-{k:<2}: {ll.mean:.2f} ± {ll.se:.2f} nats")
display(
    Image(
        viz.filters_grid(
            rbm.W.detach(),
            (8, 8),
            figures / "filters.png",
            title="CD-10: the 16 filters (columns of W)",
        )
    )
)

# %% [markdown]
# ## A deep belief net, trained greedily
#
# A DBN stacks RBMs: the first models the pixels, each next one models the hidden activities of
# the one below (Hinton, Osindero & Teh 2006). `dbn_stages` trains them one at a time, each a
# stage of the one training loop. Its likelihood is bounded from below by a variational bound
# (Salakhutdinov & Murray 2008); this one is small enough for the exact log p(v) too.

# %%
dbn = DeepBeliefNet([64, 16, 32], seed=0)
layer_config = TrainConfig(
    epochs=15,
    batch_size=20,
    lr=0.05,
    optimizer="sgd",
    momentum=0.9,
    schedule="linear",
    progress=False,
)
run_stages(dbn, dbn_stages(dbn, xb, layer_config, method="pcd", centering=True, seed=0), None)
with torch.no_grad():
    exact = dbn.exact_log_prob(xb_test).mean().item()
    log_z = estimators.exact_log_z(dbn.top)
    bound = (
        dbn.lower_bound(xb_test, log_z, n_samples=20, generator=torch.Generator().manual_seed(1))
        .mean()
        .item()
    )
print(f"DBN 64-16-32: exact test log-likelihood {exact:.2f} nats, variational bound {bound:.2f}")
dbn_samples = dbn.sample(20, n_steps=500, generator=torch.Generator().manual_seed(2))
display(
    Image(
        viz.image_grid(
            dbn_samples,
            (8, 8),
            figures / "dbn.png",
            nrow=10,
            title="DBN: Gibbs in the top RBM, then one top-down pass",
        )
    )
)

# %% [markdown]
# ## The deep autoencoder against PCA
#
# Hinton & Salakhutdinov (2006) pretrain an autoencoder as a stack of RBMs (the top one with
# linear, Gaussian code units), unroll it into an encoder and a decoder, and fine-tune the whole
# network by backpropagation. With a two-dimensional code it reconstructs digits better than the
# first two principal components, and its codes separate the classes.

# %%
ae = DeepAutoencoder([64, 100, 50, 25, 2], seed=0)
finetune = TrainConfig(epochs=20, batch_size=50, lr=3e-3, optimizer="adam", progress=False)
run_stages(
    ae,
    autoencoder_stages(
        ae, ReconstructionObjective(), x, finetune, pretrain_epochs=10, batch_size=50, seed=0
    ),
    None,
)
pca = PCA(64, 2).fit(x)
with torch.no_grad():
    print(
        f"test squared error per image: autoencoder {ae.reconstruction_error(x_test).mean():.2f}, "
        f"PCA {pca.reconstruction_error(x_test).mean():.2f}"
    )
    codes = ae.transform(x)
plt.figure(figsize=(4.5, 4))
plt.scatter(codes[:, 0], codes[:, 1], c=y, cmap="tab10", s=4)
plt.colorbar(label="digit")
plt.title("2-D codes of the training digits", fontsize=10)
plt.show()
with torch.no_grad():
    rows = [
        ("test", x_test[:10]),
        ("autoencoder", ae(x_test[:10])),
        ("PCA", pca.reconstruct(x_test[:10]).clamp(0, 1)),
    ]
display(
    Image(
        viz.labelled_rows(
            rows, (8, 8), figures / "codes.png", title="reconstructions from a 2-D code"
        )
    )
)
