# %% [markdown]
# # Lecture 001, part 2: Boltzmann machines
#
# The second part of [lecture 001](../../lectures/#lecture-001) makes the Hopfield network
# stochastic: a unit turns on with a probability that grows with its field, so the network
# samples the Boltzmann distribution p(y) = exp(-E(y) / T) / Z instead of sliding into the
# nearest minimum. Cooling T slowly (simulated annealing) finds low minima; learning the weights
# by maximum likelihood gives the Boltzmann machine, whose gradient is the difference between a
# clamped phase (data) and a free phase (model samples); hidden and label units make it a
# classifier and a generator. Restricting the connections to a bipartite graph gives the RBM,
# trained by contrastive divergence.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display
from torch.nn import functional as F

from ebmlab import data, estimators
from ebmlab.app import viz
from ebmlab.models import (
    BernoulliRBM,
    BoltzmannMachine,
    Hopfield,
    boltzmann_distribution,
    helmholtz_free_energy,
    minimum_free_energy,
)
from ebmlab.objectives import BoltzmannLearning, ContrastiveDivergence
from ebmlab.training import TrainConfig, train

# %matplotlib inline
torch.set_num_threads(1)
figures = Path(tempfile.mkdtemp())  # where the figure helpers write their PNGs


# %% [markdown]
# ## The stochastic network samples the Boltzmann distribution
#
# Flipping unit i changes the energy by 2 y_i z_i, so the Gibbs conditional is
# P(y_i = +1 | rest) = sigmoid(2 z_i / T). Sweeping the units in a random order samples
# exp(-E(y) / T). On lecture 004's four-unit network the frequencies of the 16 states match the
# exact probabilities, computed by enumeration (`ebmlab.estimators.exact_log_probs`).

# %%
net = Hopfield(4).store(torch.tensor([[-1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
draws = net.sample(20000, n_steps=20, temperature=1.0, generator=0)
index = ((draws > 0).long() * (2 ** torch.arange(4))).sum(1)  # state k has bit i = unit i on
frequency = torch.bincount(index, minlength=16).double() / len(index)
exact = estimators.exact_log_probs(net).exp()
plt.figure(figsize=(6, 2.8))
plt.bar(torch.arange(16) - 0.2, exact, width=0.4, label="exp(-E) / Z, enumerated")
plt.bar(torch.arange(16) + 0.2, frequency, width=0.4, label="Gibbs sampling, 20,000 chains")
plt.xlabel("state index")
plt.ylabel("probability")
plt.legend(fontsize=8)
plt.show()
print("largest difference:", (frequency - exact).abs().max().item())

# %% [markdown]
# ## The Boltzmann distribution minimizes the free energy
#
# For any distribution q over the states, the Helmholtz free energy is F[q] = U[q] - T H[q],
# the mean energy minus T times the entropy. Since F[q] = -T log Z + T KL(q || p_T), it is
# smallest, equal to -T log Z, exactly at the Boltzmann distribution p_T: the lecture's minimum
# free-energy principle. Along the path q_a = (1 - a) p + a u from p to the uniform
# distribution u, and for the sample frequencies above:

# %%
p_boltzmann = boltzmann_distribution(net)
uniform = torch.full((16,), 1 / 16, dtype=torch.float64)
path = torch.linspace(0, 1, 21)
free = [float(helmholtz_free_energy(net, (1 - a) * p_boltzmann + a * uniform)) for a in path]
print(
    f"F_min = -log Z = {minimum_free_energy(net):.4f}; F[p] = {free[0]:.4f}; "
    f"F[sample frequencies] = {float(helmholtz_free_energy(net, frequency)):.4f}; "
    f"F[uniform] = {free[-1]:.4f}"
)
plt.figure(figsize=(5, 3))
plt.plot(path, free, marker=".")
plt.axhline(minimum_free_energy(net), color="gray", linestyle="--", label="-T log Z")
plt.xlabel("a in q = (1 - a) p + a uniform")
plt.ylabel("F[q] = U - T H")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Simulated annealing
#
# At high T the network wanders; as T falls it settles. Cooling geometrically (T <- alpha T)
# and finishing with the deterministic dynamics finds lower energies than the deterministic
# dynamics alone, which stop at the first minimum they meet. The landscape here is a spin glass:
# 100 units with random symmetric Gaussian weights, full of local minima. From the same 200
# random starts, greedy descent and annealing end at:

# %%
g = torch.Generator().manual_seed(0)
couplings = torch.randn(100, 100, generator=g) / 10
glass = Hopfield(100).set_weights((couplings + couplings.T) / 2)
starts = torch.where(torch.rand(200, 100, generator=g) < 0.5, -1.0, 1.0)
greedy = glass.energy(glass.recall(starts, seed=0))
annealed = glass.energy(glass.anneal(starts, t_max=2.0, alpha=0.95, t_min=0.05, seed=0))
print(
    f"mean final energy: greedy {greedy.mean():.2f}, annealed {annealed.mean():.2f}; "
    f"lowest: {greedy.min():.2f} and {annealed.min():.2f}"
)
plt.figure(figsize=(5, 3))
plt.hist(
    [greedy.numpy(), annealed.numpy()], bins=25, label=["greedy descent", "simulated annealing"]
)
plt.xlabel("final energy")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Boltzmann learning with hidden and label units
#
# A Boltzmann machine p(s) ∝ exp(-E(s)) over visible, hidden and label units learns by
#
#     dW_ij ∝ <s_i s_j>_clamped - <s_i s_j>_free,
#
# the correlations with the data (and its label) clamped, minus those of the free-running
# network. `BoltzmannLearning` estimates both phases by Gibbs sampling; it trains through the one
# training loop like every other objective. The labels enter as one-hot units clamped with the
# pixels; afterwards p(class | v) classifies, and clamping a label generates that class.

# %%
x, y = data.load("digits", "train", binarize="threshold")
x_test, y_test = data.load("digits", "test", binarize="threshold")
labelled = torch.cat([x, F.one_hot(y, 10).to(x)], 1)
bm = BoltzmannMachine(64, n_hidden=10, n_labels=10, seed=0)
train(
    bm,
    BoltzmannLearning(n_chains=100, clamped_burn_in=3),
    labelled,
    TrainConfig(
        epochs=5,
        batch_size=50,
        lr=0.05,
        optimizer="sgd",
        momentum=0.5,
        schedule="linear",
        progress=False,
    ),
)
p = bm.p_class_given_v(x_test, generator=torch.Generator().manual_seed(1), exact=True)
print(f"test accuracy of p(class | v): {(p.argmax(1) == y_test).float().mean():.1%}")
classes = torch.arange(10).repeat_interleave(6)
generated = bm.generate_class(
    classes, len(classes), n_sweeps=300, generator=torch.Generator().manual_seed(2)
)
display(
    Image(
        viz.image_grid(
            generated,
            (8, 8),
            figures / "classes.png",
            nrow=6,
            row_labels=[str(k) for k in range(10)],
            title="generated with the label clamped, one row per class",
        )
    )
)

# %% [markdown]
# ## The RBM and contrastive divergence
#
# With no visible-visible and no hidden-hidden connections, E(v, h) = -b^T v - c^T h - v^T W h,
# the hidden units are independent given the visible ones and the other way round, so Gibbs
# sampling alternates two layers, and the free energy
# F(v) = -b^T v - sum_j softplus(c_j + (v^T W)_j) is exact. Contrastive divergence replaces the
# free phase by k steps of block Gibbs sampling started at the data (CD-k); persistent CD keeps
# the chains from one update to the next.
# With 16 hidden units the partition function is a sum over 2^16 hidden states, so the exact test
# log-likelihood can follow the training.

# %%
xb, _ = data.load("digits", "train", binarize="stochastic")
xb_test, _ = data.load("digits", "test", binarize="stochastic")
curves = {}
for method in ("cd", "pcd"):
    rbm = BernoulliRBM(64, 16, seed=0)
    curve = curves[method] = []

    def exact_test_ll(model, epoch, curve=curve):
        ll = estimators.log_likelihood(model, xb_test, estimators.exact_log_z(model)).mean
        curve.append(ll)
        return {"test_log_likelihood": ll}

    train(
        rbm,
        ContrastiveDivergence(method=method, k=1, centering=True),
        xb,
        TrainConfig(
            epochs=15,
            batch_size=20,
            lr=0.05,
            optimizer="sgd",
            momentum=0.9,
            schedule="linear",
            progress=False,
        ),
        epoch_callback=exact_test_ll,
    )
    print(f"{method}-1: exact test log-likelihood {curve[-1]:.2f} nats")
plt.figure(figsize=(5, 3))
for method, curve in curves.items():
    plt.plot(range(1, len(curve) + 1), curve, marker="o", label=f"{method.upper()}-1")
plt.xlabel("epoch")
plt.ylabel("test log-likelihood (nats, exact)")
plt.legend()
plt.show()
samples = rbm.sample(30, n_steps=1000, generator=torch.Generator().manual_seed(3))
display(
    Image(
        viz.image_grid(
            samples,
            (8, 8),
            figures / "rbm.png",
            nrow=10,
            title="PCD-trained RBM: 1,000 Gibbs sweeps from noise",
        )
    )
)
