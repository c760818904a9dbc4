# %% [markdown]
# # Lecture 001, part 3: sampling methods and energy-based models
#
# The last part of [lecture 001](../../lectures/#lecture-001) turns to general energy-based
# models, p(x) = exp(-E(x)) / Z with any E, and to the samplers they need: exact methods for
# simple distributions (the inverse CDF, Box-Muller, the central limit theorem), importance
# sampling, and Markov chains, whose stationary distribution is the target when they satisfy
# detailed balance: Metropolis-Hastings, Gibbs, Langevin dynamics (SGLD) and Hamiltonian Monte
# Carlo. It ends with training an energy network, whose negative phase such a chain supplies.

# %%
import math

import matplotlib.pyplot as plt
import torch

from ebmlab import data
from ebmlab.estimators import enumerate_states
from ebmlab.models import MLPEnergy
from ebmlab.objectives import ContrastiveLangevin
from ebmlab.samplers import (
    HMC,
    MALA,
    SGLD,
    Gibbs,
    MetropolisHastings,
    box_muller,
    clt_gaussian,
    distance_to_stationarity,
    gibbs_as_metropolis_hastings,
    gibbs_matrix,
    importance_sampling,
    inverse_cdf_categorical,
    is_ergodic,
    sample,
    satisfies_detailed_balance,
    stationary_distribution,
    target_probs,
    transition_matrix,
)
from ebmlab.training import TrainConfig, train

# %matplotlib inline
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)

# %% [markdown]
# ## Exact samplers: the inverse CDF and Box-Muller
#
# A discrete distribution is sampled by drawing u ~ U[0, 1) and returning the first k whose
# cumulative probability exceeds u. A standard normal pair comes from two uniforms by the
# Box-Muller transform, z = sqrt(-2 ln u1) (cos 2 pi u2, sin 2 pi u2).

# %%
probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
k = inverse_cdf_categorical(probs, 20000, generator=g)
print("target", probs.tolist())
print("drawn ", (torch.bincount(k, minlength=4) / 20000).tolist())
z = box_muller(20000, generator=g)
grid = torch.linspace(-4, 4, 200)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].bar(range(4), probs, width=0.4, label="p(k)")
axes[0].bar(
    torch.arange(4) + 0.4, torch.bincount(k, minlength=4) / 20000, width=0.4, label="inverse CDF"
)
axes[0].legend(fontsize=8)
axes[1].hist(z.numpy(), bins=60, density=True, alpha=0.6, label="Box-Muller")
axes[1].plot(grid, torch.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi), "k", label="N(0, 1)")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# The lecture also builds a Gaussian from the central limit theorem: the sum of m fair coin
# flips, standardized, z = (sum_i X_i - m/2) / sqrt(m/4), tends to N(0, 1). It has mean 0 and
# variance 1 for every m, but lives on a lattice of spacing 2 / sqrt(m) and cannot exceed
# sqrt(m) in size: with m = 4 it is a five-point distribution, with m = 256 it is close to the
# Box-Muller draws.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, m in zip(axes, (4, 256)):
    zc = clt_gaussian(20000, n_terms=m, generator=g)
    ax.hist(
        zc.numpy(),
        bins=60,
        range=(-4, 4),
        density=True,
        alpha=0.6,
        label=f"CLT, m = {m}: var {zc.var():.3f}",
    )
    ax.plot(grid, torch.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi), "k", label="N(0, 1)")
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Importance sampling
#
# To average f under p ∝ exp(-E) using draws from a proposal q, weight each draw by
# w = p~(x) / q(x) and normalize the weights. Kong's effective sample size (sum w)^2 / sum w^2
# says how many exact draws the weighted sample is worth; the mean of the unnormalized weights
# estimates Z. The target here is the 8-Gaussians density (normalized, so log Z = 0), the
# proposal a broad Gaussian.


# %%
def log_target(x):
    return data.toy2d_log_density("8gaussians", x)


scale = 3.0


def proposal_sample(n, generator):
    return scale * torch.randn(n, 2, generator=generator)


def proposal_log_prob(x):
    return -0.5 * (x / scale).pow(2).sum(-1) - 2 * math.log(scale) - math.log(2 * math.pi)


result = importance_sampling(
    log_target, proposal_sample, proposal_log_prob, 20000, generator=g, f=lambda x: x.pow(2).sum(-1)
)
print(f"log Z estimate {result.log_normalizer:+.3f} (exact 0), ESS {result.ess:.0f} of 20000")
print(
    f"E|x|^2 estimate {result.estimate.item():.3f} (exact 8 + 2 * 0.35^2 = {8 + 2 * 0.35**2:.3f})"
)

# %% [markdown]
# ## Markov chains on a finite state space
#
# A Markov chain with transition matrix T (T[i, j] = P(x_{t+1} = s_j | x_t = s_i)) leaves pi
# invariant when pi T = pi. Detailed balance, pi_i T_ij = pi_j T_ji, is a sufficient condition,
# and if the chain is also ergodic (irreducible and aperiodic) it forgets its start:
# the distribution after t steps converges to pi from anywhere. On a target small enough to
# enumerate, `ebmlab.samplers.finite` writes down the exact matrix of one step of a kernel and
# checks all of this. The target is a 3-unit Boltzmann machine (8 states), sampled by
# Metropolis-Hastings with a one-bit-flip proposal and by Gibbs sampling.

# %%
W = torch.tensor([[0.0, 1.5, -1.0], [1.5, 0.0, 0.8], [-1.0, 0.8, 0.0]])


def bm_energy(s):
    return -0.5 * ((s @ W) * s).sum(-1)


states = enumerate_states(3).float()
target = target_probs(bm_energy, states)
chains = {
    "MH, one-bit flips": transition_matrix(MetropolisHastings(proposal="flip"), bm_energy, states),
    "Gibbs, systematic sweep": transition_matrix(Gibbs(scan="systematic"), bm_energy, states),
    "Gibbs, random site": gibbs_matrix(bm_energy, states, scan="site"),
}
for name, T in chains.items():
    pi = stationary_distribution(T)
    print(
        f"{name:>24}: max |pi - exp(-E)/Z| = {(pi - target).abs().max():.1e}, "
        f"detailed balance {satisfies_detailed_balance(T, pi)}, ergodic {is_ergodic(T)}"
    )
gibbs_mh = gibbs_as_metropolis_hastings(bm_energy, states, site=0)
moves = gibbs_mh.proposal > 0
print(
    "Gibbs as an MH proposal: every acceptance probability is",
    gibbs_mh.acceptance[moves].unique().tolist(),
)

# %% [markdown]
# The systematic Gibbs sweep leaves p invariant without satisfying detailed balance (its time
# reversal is the sweep in the opposite order). How fast each chain forgets its worst start is
# the total-variation distance to stationarity after t steps:

# %%
plt.figure(figsize=(5, 3))
for name, T in chains.items():
    plt.semilogy(distance_to_stationarity(T, 30).clamp_min(1e-16), marker=".", label=name)
plt.xlabel("steps t")
plt.ylabel("max_s TV(T^t(s, .), pi)")
plt.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Markov chain Monte Carlo in two dimensions
#
# Each kernel in `ebmlab.samplers` moves a batch of chains under an energy; `sample` runs it with
# burn-in, adapts the step size of MALA and HMC towards their target acceptance, and reports the
# acceptance rate and the effective sample size. The target is a mixture of four Gaussians on a
# ring, E(x) = -log sum_k exp(-|x - m_k|^2 / (2 sigma^2)); the 400 chains start uniformly on
# the square. Random-walk Metropolis-Hastings only needs energies; MALA and HMC use the gradient;
# SGLD is unadjusted Langevin with a decreasing step eps_t = a (b + t)^-gamma
# (1/2 < gamma <= 1, the conditions under which it converges). Each chain finds a mode and stays
# near it: moving between modes needs tempering or annealing.

# %%
centers = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])


def energy(x):
    return -torch.logsumexp(-(x[:, None, :] - centers).pow(2).sum(-1) / (2 * 0.4**2), dim=1)


x0 = 8 * torch.rand(400, 2, generator=g) - 4
kernels = {
    "Metropolis-Hastings": MetropolisHastings(scale=0.3),
    "MALA": MALA(step_size=0.05),
    "HMC": HMC(step_size=0.1, n_leapfrog=10),
    "SGLD": SGLD(a=0.05, b=10.0, gamma=0.55),
}
fig, axes = plt.subplots(1, 4, figsize=(14, 3.5), sharex=True, sharey=True)
for ax, (name, kernel) in zip(axes, kernels.items()):
    res = sample(kernel, energy, x0, n_steps=300, burn_in=200, seed=0, progress=False)
    draws = res.samples[-1]
    ax.scatter(draws[:, 0], draws[:, 1], s=3)
    ax.set_title(f"{name}\naccept {res.acceptance_rate:.2f}, ESS {res.ess.mean():.0f}", fontsize=9)
    ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## Training an energy-based model
#
# Maximum likelihood for p_theta(x) = exp(-E_theta(x)) / Z_theta has the gradient
# E_data[grad E] - E_model[grad E]: push the energy of the data down and the energy of the
# model's own samples up. Contrastive divergence with Langevin dynamics draws those samples with a
# few Langevin steps from a replay buffer of chains (Du & Mordatch 2019); on a 2-D density the
# result can be normalized on a grid and compared with the data density exactly, as a KL
# divergence in nats.

# %%
x_train = data.toy2d("8gaussians", 20000, seed=0)
energy_net = MLPEnergy(2, hidden=128, depth=3, langevin_step=0.002)
train(
    energy_net,
    ContrastiveLangevin(n_steps=10, step_size=0.002, jump_steps=1, alpha=0.01),
    x_train,
    TrainConfig(
        epochs=10, batch_size=256, lr=5e-3, schedule="cosine", max_grad_norm=10.0, progress=False
    ),
)
grid = data.toy2d_grid("8gaussians")
with torch.no_grad():
    log_unnormalized = -energy_net.energy(grid.points)
print(f"KL(p_data || p_model) = {grid.kl_from_data(log_unnormalized).item():.3f} nats")
density = (log_unnormalized - grid.log_normalizer(log_unnormalized)).exp().reshape(grid.n, grid.n)
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
extent = (*grid.bounds, *grid.bounds)
axes[0].imshow(grid.log_density.exp().reshape(grid.n, grid.n), origin="lower", extent=extent)
axes[0].set_title("data density", fontsize=10)
axes[1].imshow(density.numpy(), origin="lower", extent=extent)
axes[1].set_title("exp(-E) / Z of the trained energy", fontsize=10)
plt.show()
