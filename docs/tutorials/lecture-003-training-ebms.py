# %% [markdown]
# # Lecture 003: training energy-based models
#
# [Lecture 003](../../lectures/#lecture-003) (Stanford CS236, Energy-Based Models) compares the
# ways to fit p_theta(x) = exp(-E_theta(x)) / Z_theta without computing Z_theta: contrastive
# divergence with samples from Langevin MCMC, score matching (which matches the gradient of the
# log density, where Z vanishes) and its equivalence to the Fisher divergence, and noise
# contrastive estimation, which learns log Z as a parameter by telling data from noise, with a
# Gaussian noise or with a normalizing flow trained against the energy (flow contrastive
# estimation). On a 2-D density every result can be normalized on a grid and scored exactly.

# %%
import matplotlib.pyplot as plt
import torch

from ebmlab import data
from ebmlab.models import MLPEnergy, QuadraticEnergy
from ebmlab.objectives import (
    ContrastiveLangevin,
    ExactScoreMatching,
    FlowContrastiveEstimation,
    NoiseContrastiveEstimation,
)
from ebmlab.training import TrainConfig, train

# %matplotlib inline
torch.set_num_threads(1)
name = "8gaussians"
x_train = data.toy2d(name, 20000, seed=0)
grid = data.toy2d_grid(name)

# %% [markdown]
# ## Score matching is the Fisher divergence, up to a constant
#
# The Fisher divergence between the data and the model compares their scores,
# F(theta) = 1/2 E_data |grad log p_data(x) - grad log p_theta(x)|^2, and needs the data's score,
# which is unknown in practice. Integrating by parts (Hyvärinen 2005) removes it:
#
#     F(theta) = E_data[ 1/2 |grad E_theta(x)|^2 - Laplacian E_theta(x) ] + C,
#
# where C = 1/2 E_data |grad log p_data|^2 does not depend on theta. The first term is the loss
# of `ExactScoreMatching`. Here the data score is known exactly (the toy density is
# differentiable), so both sides can be computed for a family of Gaussian models
# N(0, s^2 I): the difference stays the same while both change.

# %%
x = x_train.clone().requires_grad_(True)
data_score = torch.autograd.grad(data.toy2d_log_density(name, x).sum(), x)[0]
objective = ExactScoreMatching()
print("   s    Fisher divergence   score-matching loss   difference")
for s in (1.0, 1.5, 2.0, 3.0, 4.0):
    model = QuadraticEnergy(2)
    with torch.no_grad():
        model.raw_diag.fill_(torch.log(torch.expm1(torch.tensor(1.0 / s))).item())  # L = I / s
    model_score = -torch.autograd.grad(model.energy(x).sum(), x)[0]
    fisher = 0.5 * (data_score - model_score).pow(2).sum(-1).mean()
    loss, _ = objective.loss(model, x.detach(), torch.Generator().manual_seed(0))
    print(
        f"{s:4.1f}   {fisher.item():17.4f}   {loss.item():19.4f}   {(fisher - loss).item():10.4f}"
    )
print("C = 1/2 E|grad log p_data|^2 =", round(0.5 * data_score.pow(2).sum(-1).mean().item(), 4))

# %% [markdown]
# ## Four ways to train the same energy network
#
# The same MLP energy, the same data and budget, four objectives:
#
# * contrastive divergence: negatives from 10 Langevin steps of a replay buffer (plus one
#   independence Metropolis jump, so that chains move between modes);
# * exact score matching (the loss above, for a neural energy);
# * noise contrastive estimation: logistic regression of data against 8 noise samples per
#   point from a Gaussian fitted to the data, with log Z a learned parameter;
# * flow contrastive estimation: the noise is a Real NVP flow, trained to fool the energy
#   while the energy learns to tell data from flow samples.
#
# Each result is normalized on a 180 x 180 grid; the KL divergence from the data is in nats,
# and for the two NCE variants the learned log Z can be checked against the grid's.

# %%
objectives = {
    "CD (Langevin)": ContrastiveLangevin(n_steps=10, step_size=0.002, jump_steps=1, alpha=0.01),
    "score matching": ExactScoreMatching(),
    "NCE": NoiseContrastiveEstimation(noise_ratio=8.0),
    "FCE": FlowContrastiveEstimation(2, noise_ratio=1.0),
}
densities = {}
for label, objective in objectives.items():
    energy_net = MLPEnergy(2, hidden=128, depth=3, langevin_step=0.002)
    train(
        energy_net,
        objective,
        x_train,
        TrainConfig(
            epochs=6, batch_size=256, lr=5e-3, schedule="cosine", max_grad_norm=10.0, progress=False
        ),
    )
    with torch.no_grad():
        log_unnormalized = -energy_net.energy(grid.points)
    log_z = grid.log_normalizer(log_unnormalized)
    line = f"{label:>15}: KL = {grid.kl_from_data(log_unnormalized).item():.3f} nats"
    if hasattr(objective, "log_z"):
        line += f", learned log Z {objective.log_z.item():.3f} vs grid {log_z.item():.3f}"
    print(line)
    densities[label] = (log_unnormalized - log_z).exp().reshape(grid.n, grid.n)

fig, axes = plt.subplots(1, 5, figsize=(16, 3.4))
extent = (*grid.bounds, *grid.bounds)
axes[0].imshow(grid.log_density.exp().reshape(grid.n, grid.n), origin="lower", extent=extent)
axes[0].set_title("data", fontsize=10)
for ax, (label, density) in zip(axes[1:], densities.items()):
    ax.imshow(density.numpy(), origin="lower", extent=extent)
    ax.set_title(label, fontsize=10)
for ax in axes:
    ax.axis("off")
plt.show()
