# %% [markdown]
# # Lecture 004: a tour of generative families
#
# [Lecture 004](../../lectures/#lecture-004) (CENG501, week 12) sorts generative models by how
# they treat the density: explicit and tractable (autoregressive models such as PixelCNN,
# normalizing flows such as Real NVP), explicit but approximate (the VAE and its ELBO), implicit
# (GANs), and energy-based (Hopfield networks and Boltzmann machines). Each is trained here for a
# few seconds on the built-in 8x8 digits (the flow on a 2-D density) and scored the way it
# allows: an exact log-likelihood, a bound, or a sample-quality distance.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from ebmlab import data, estimators
from ebmlab.app import viz
from ebmlab.metrics import frechet_distance
from ebmlab.models import (
    GAN,
    VAE,
    BernoulliRBM,
    BoltzmannMachine,
    Hopfield,
    IndependentBernoulli,
    PixelCNN,
    RealNVP,
)
from ebmlab.objectives import (
    ContrastiveDivergence,
    GANObjective,
    MaximumLikelihood,
    VariationalBound,
)
from ebmlab.training import TrainConfig, train

# %matplotlib inline
torch.set_num_threads(1)
figures = Path(tempfile.mkdtemp())  # where the figure helpers write their PNGs


xb, _ = data.load("digits", "train", binarize="stochastic")
xb_test, _ = data.load("digits", "test", binarize="stochastic")
scores = {}
baseline = IndependentBernoulli(64).fit(xb)
with torch.no_grad():
    scores["independent pixels (exact)"] = baseline.log_prob(xb_test).mean().item()

# %% [markdown]
# ## PixelCNN: an exact autoregressive likelihood
#
# p(x) = prod_i p(x_i | x_<i) in raster order; masked convolutions compute all 64 conditionals
# in one pass, so the log-likelihood is exact, while sampling goes one pixel at a time. The gated
# architecture (van den Oord et al. 2016) has no blind spot.

# %%
pixelcnn = PixelCNN([8, 8], channels=16, n_layers=4, first_kernel=5)
train(
    pixelcnn,
    MaximumLikelihood(),
    xb,
    TrainConfig(epochs=5, batch_size=32, lr=3e-3, schedule="cosine", progress=False),
)
with torch.no_grad():
    scores["PixelCNN (exact)"] = pixelcnn.log_prob(xb_test).mean().item()
display(
    Image(
        viz.image_grid(
            pixelcnn.sample(20, generator=torch.Generator().manual_seed(0)),
            (8, 8),
            figures / "pixelcnn.png",
            nrow=10,
            title="PixelCNN samples",
        )
    )
)

# %% [markdown]
# ## The variational autoencoder: a bound
#
# An encoder q(z | x) and a decoder p(x | z) with z ~ N(0, I) are trained together by maximizing
# the evidence lower bound, ELBO = E_q[log p(x | z)] - KL(q(z | x) || p(z)) <= log p(x). With K
# importance samples the bound tightens (IWAE-K, Burda et al. 2016); K = 500 gets close to
# log p(x).

# %%
vae = VAE(64, hidden=[128], latent=8, seed=0)
train(vae, VariationalBound(), xb, TrainConfig(epochs=40, batch_size=50, lr=3e-3, progress=False))
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    elbo = vae.elbo(xb_test, g).mean().item()
scores["VAE (IWAE-500 bound)"] = vae.iwae_bound(xb_test, k=500, generator=g).mean().item()
print(f"VAE: ELBO {elbo:.2f}, IWAE-500 {scores['VAE (IWAE-500 bound)']:.2f} nats")
display(
    Image(
        viz.image_grid(
            vae.sample(20, generator=g),
            (8, 8),
            figures / "vae.png",
            nrow=10,
            title="VAE samples E[x | z], z ~ N(0, I)",
        )
    )
)

# %% [markdown]
# ## Real NVP: an exact density by a change of variables
#
# A normalizing flow maps data to a Gaussian through invertible layers with cheap Jacobians:
# each affine coupling leaves half of the coordinates unchanged and scales and shifts the other
# half by functions of the first, so log p(x) = log N(f(x)) + log |det df/dx| is exact. On a 2-D
# density the flow can be drawn and its KL divergence from the data computed on a grid.

# %%
x2 = data.toy2d("8gaussians", 20000, seed=0)
flow = RealNVP(2, n_layers=8, hidden=64, depth=2, scale_bound=2.0)
flow.standardize(x2)
train(
    flow,
    MaximumLikelihood(),
    x2,
    TrainConfig(epochs=10, batch_size=256, lr=1e-3, schedule="cosine", progress=False),
)
grid = data.toy2d_grid("8gaussians")
with torch.no_grad():
    log_q = flow.log_prob(grid.points)
    print(
        f"Real NVP on 8gaussians: KL(p_data || q) = {grid.kl_from_data(log_q).item():.3f} nats, "
        f"mass on the grid {grid.log_normalizer(log_q).exp().item():.3f}"
    )
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
extent = (*grid.bounds, *grid.bounds)
axes[0].imshow(log_q.exp().reshape(grid.n, grid.n).numpy(), origin="lower", extent=extent)
axes[0].set_title("flow density", fontsize=10)
drawn = flow.sample(2000, generator=torch.Generator().manual_seed(2))
axes[1].scatter(drawn[:, 0], drawn[:, 1], s=2)
axes[1].set_xlim(grid.bounds)
axes[1].set_ylim(grid.bounds)
axes[1].set_aspect("equal")
axes[1].set_title("flow samples", fontsize=10)
plt.show()

# %% [markdown]
# ## A GAN: no density, a sample-quality distance
#
# A generator G(z) and a discriminator D(x) play the minimax game
# min_G max_D E log D(x) + E log(1 - D(G(z))); at the optimal discriminator
# D* = p_data / (p_data + p_G) the generator's loss is log 4 - 2 JSD(p_data || p_G). The model
# defines no likelihood, so it is scored by the Fréchet distance between its samples and test
# images in the features of a digit classifier (lower is better; training images give the
# floor).

# %%
x_grey, _ = data.load("digits", "train")
x_grey_test, _ = data.load("digits", "test")
gan = GAN(64, latent_dim=16, hidden=128, seed=0)
train(
    gan,
    GANObjective(r1_gamma=3.0),
    x_grey,
    TrainConfig(epochs=30, batch_size=64, lr=1e-3, progress=False),
)
gan.eval()
fake = gan.sample(len(x_grey_test), generator=torch.Generator().manual_seed(3))
with tempfile.TemporaryDirectory() as cache:  # the feature classifier is trained once, here
    gan_fd = frechet_distance(fake, "digits", cache=cache).distance
    floor = frechet_distance(x_grey[: len(x_grey_test)], "digits", cache=cache).distance
print(f"Fréchet digit distance: GAN samples {gan_fd:.2f}, training images {floor:.2f}")
display(
    Image(viz.image_grid(fake[:20], (8, 8), figures / "gan.png", nrow=10, title="GAN samples G(z)"))
)

# %% [markdown]
# ## Energy-based: Hopfield networks and Boltzmann machines
#
# The lecture's Hopfield example stores two 4-unit patterns and recalls one from a probe one flip
# away. Its Boltzmann machine example has two visible and two hidden units with weights
# w(v1, h1) = 2, w(v2, h2) = 1, w(h1, h2) = -1 and no biases; enumerating its 16 states gives
# Z ≈ 39.7 and the marginal p(v) of the lecture's table (0.466, 0.305, 0.144, 0.084 there,
# from rounded terms). An RBM, the restricted version, is trained on the digits last, with its
# log Z by enumeration of the 2^20 hidden states.

# %%
hopfield = Hopfield(4).store(torch.tensor([[-1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
print(
    "Hopfield recall of (-1, 1, 1, 1):",
    hopfield.recall(torch.tensor([[-1.0, 1.0, 1.0, 1.0]]), seed=0).tolist(),
)
bm = BoltzmannMachine(2, n_hidden=2)  # units ordered v1, v2, h1, h2
with torch.no_grad():
    bm.W.zero_()
    bm.W[0, 2], bm.W[1, 3], bm.W[2, 3] = 2.0, 1.0, -1.0
    bm.theta.zero_()
    log_z = bm.log_z()
    visible = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    p_v = (-bm.free_energy(visible) - log_z).exp()
print(f"Z = {log_z.exp().item():.2f}")
for v, p in zip(visible.tolist(), p_v.tolist()):
    print(f"p(v = {v}) = {p:.3f}")
rbm = BernoulliRBM(64, 20, seed=0)
train(
    rbm,
    ContrastiveDivergence(method="pcd", centering=True),
    xb,
    TrainConfig(
        epochs=20,
        batch_size=20,
        lr=0.05,
        optimizer="sgd",
        momentum=0.9,
        schedule="linear",
        progress=False,
    ),
)
scores["RBM, 20 hidden (exact)"] = estimators.log_likelihood(
    rbm, xb_test, estimators.exact_log_z(rbm)
).mean

# %% [markdown]
# ## Side by side
#
# Test log-likelihoods in nats per image on the stochastically binarized digits (the flow and
# the GAN are scored differently above). With budgets of seconds these numbers rank the
# families on this data only; the [comparison table](../../comparison/) has them on MNIST.

# %%
for label, value in sorted(scores.items(), key=lambda kv: -kv[1]):
    print(f"{label:>28}: {value:7.2f}")
