# %% [markdown]
# # Lecture 001, part 1: Hopfield networks
#
# This tutorial follows the first part of [lecture 001](../../lectures/#lecture-001) (Yi Wu,
# *Deep Learning*, Lecture 4: Energy-Based Models): the update rule and the energy that it never
# raises, the worked examples, Hebbian storage, spurious states, the capacity of the network
# against the bounds the lecture quotes, and the rule that learns W by raising the energy of the
# "valleys" next to the patterns. Everything runs on `ebmlab.models.Hopfield` and the built-in
# 8x8 digits.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from ebmlab import data
from ebmlab.app import viz
from ebmlab.app.hopfield_experiments import capacity_summary, capacity_sweep, plot_capacity
from ebmlab.models import Hopfield, capacity_bounds
from ebmlab.models.hopfield import flip_bits, to_spins

# %matplotlib inline
torch.set_num_threads(1)
figures = Path(tempfile.mkdtemp())  # where the figure helpers write their PNGs


# %% [markdown]
# ## The update rule and the energy
#
# N units take values y_i in {-1, +1}. With symmetric weights w_ij = w_ji, a zero diagonal and
# biases b, each unit feels the field z_i = sum_{j != i} w_ij y_j + b_i, and a unit flips when its
# sign disagrees with its field: y_i <- -y_i if y_i z_i < 0. The energy
#
#     E(y) = -1/2 y^T W y - b^T y
#
# drops by 2 |z_i| at every such flip, so asynchronous updates (one unit at a time) never raise
# it, and since there are finitely many states they stop at a fixed point: a local minimum of E.
#
# Lecture 004's worked example stores two patterns in four units; the probe (-1, 1, 1, 1) is one
# flip away from the second pattern and falls into it.

# %%
patterns = torch.tensor([[-1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
net = Hopfield(4).store(patterns)
print("4 W =\n", 4 * net.W)
probe = torch.tensor([[-1.0, 1.0, 1.0, 1.0]])
state, info = net.recall(probe, seed=0, return_info=True)
print("probe", probe.tolist(), "energy", net.energy(probe).item())
print(
    "recalled", state.tolist(), "energy", info.energy.item(), "after", info.sweeps.item(), "sweeps"
)

# %% [markdown]
# The energy never rises along the asynchronous dynamics. On a network holding five digits, one
# sweep at a time from 100 noisy probes:

# %%
x, y = data.load("digits", "train", binarize="threshold")
digits = to_spins(torch.stack([x[y == k][0] for k in range(5)]))
memory = Hopfield(64, rule="pseudoinverse").store(digits)
g = torch.Generator().manual_seed(0)
probes = flip_bits(digits[torch.arange(100) % 5], 0.15, g)
trace = [memory.energy(probes)]
current = probes
for sweep in range(6):
    current = memory.recall(current, max_sweeps=1, seed=sweep)
    trace.append(memory.energy(current))
trace = torch.stack(trace)
assert (trace[1:] <= trace[:-1] + 1e-5).all()  # energy descent, for every probe and sweep
plt.figure(figsize=(5, 3))
plt.plot(trace.numpy(), color="C0", alpha=0.2)
plt.xlabel("sweep")
plt.ylabel("E(y)")
plt.title("asynchronous updates never raise the energy", fontsize=10)
plt.show()

# %% [markdown]
# ## Hebbian storage and its fake memories
#
# The Hebbian rule sets w_ij = (1/N) sum_p y_i^p y_j^p (zero diagonal). With four units and three
# patterns we can list all 16 states and see which ones are fixed points: the patterns, and
# their negations, which the rule stores as well (E(-y) = E(y) when b = 0).

# %%
states = torch.tensor([[1.0 if (k >> i) & 1 else -1.0 for i in range(4)] for k in range(16)])
three = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, 1.0, -1.0]])
hebb = Hopfield(4).store(three)
stable = hebb.is_fixed_point(states)
for s, e, ok in zip(states.tolist(), hebb.energy(states).tolist(), stable.tolist()):
    kind = (
        "pattern"
        if s in three.tolist()
        else ("negated pattern" if [-v for v in s] in three.tolist() else "")
    )
    if ok:
        print(f"fixed point {s}  E = {e:+.2f}  {kind}")

# %% [markdown]
# In larger networks the Hebbian rule also creates *mixture* states: the sign of the sum of an
# odd number of patterns is itself a stable state that was never stored (Amit, Gutfreund &
# Sompolinsky 1985).

# %%
g = torch.Generator().manual_seed(1)
random_patterns = torch.where(torch.rand(3, 400, generator=g) < 0.5, -1.0, 1.0)
big = Hopfield(400).store(random_patterns)
mixture = torch.sign(random_patterns.sum(0, keepdim=True))
print("patterns stable:", big.is_fixed_point(random_patterns).tolist())
print("mixture sign(y1 + y2 + y3) stable:", big.is_fixed_point(mixture).item())
print(
    "overlap of the mixture with each pattern:",
    (mixture @ random_patterns.T / 400).squeeze().tolist(),
)

# %% [markdown]
# ## Associative memory on digits
#
# Ten binarized digits, one per class, stored with the Hebbian rule and with the pseudo-inverse
# (projection) rule, then probed with 15% of their pixels flipped. At a load of P/N = 10/64 the
# correlated digits are already too many for the Hebbian rule, while the projection rule, which
# makes every stored pattern a fixed point as long as they are linearly independent, recalls them.

# %%
ten = to_spins(torch.stack([x[y == k][0] for k in range(10)]))
g = torch.Generator().manual_seed(2)
noisy = flip_bits(ten, 0.15, g)
recalled = {}
for rule in ("hebbian", "pseudoinverse"):
    recalled[rule] = Hopfield(64, rule=rule).store(ten).recall(noisy, seed=0)
    exact = (recalled[rule] == ten).all(1).float().mean().item()
    print(f"{rule:>13}: {exact:.0%} recalled exactly")
rows = [
    ("stored", ten),
    ("15% flipped", noisy),
    ("Hebbian", recalled["hebbian"]),
    ("pseudo-inverse", recalled["pseudoinverse"]),
]
display(
    Image(
        viz.labelled_rows(
            [(label, (images + 1) / 2) for label, images in rows],
            (8, 8),
            figures / "recall.png",
            title="recall of ten stored digits",
        )
    )
)

# %% [markdown]
# ## Capacity against the bounds
#
# How many random patterns can N units hold? The lecture quotes two bounds: with the right
# weights, any K <= N patterns can all be made stable (Mostafa & St. Jacques 1985; the
# pseudo-inverse rule achieves it), and with the Hebbian rule the number of random patterns that
# are all recalled exactly is about N / (4 ln N) for large N (McEliece et al. 1987). Allowing a
# small fraction of errors, the Hebbian network works up to about 0.138 N (Amit, Gutfreund &
# Sompolinsky 1985). `capacity_sweep` stores P = load x N random patterns with each rule and
# measures the fraction of stored patterns that are fixed points and of probes recalled exactly;
# the plot marks the three bounds as loads and draws the Hebbian prediction (1 - P(bit flips))^N.

# %%
N = 100
rows = capacity_sweep(
    n_units=N,
    loads=(0.05, 0.1, 0.138, 0.2, 0.3, 0.5, 0.8),
    modern_loads=(),
    rules=("hebbian", "storkey", "pseudoinverse", "learned"),
    min_probes=100,
    max_probes=100,
    seed=0,
)
print(
    {
        rule: round(v["fixed_point_half_load"] or float("inf"), 3)
        for rule, v in capacity_summary(rows).items()
    }
)
bounds = capacity_bounds(N)  # in patterns: McEliece et al., Amit et al., Mostafa & St. Jacques
print({name: round(value, 1) for name, value in bounds.items()})
display(Image(plot_capacity(rows, figures / "capacity.png", title=f"capacity, N = {N}")))

# %% [markdown]
# ## Asynchronous updates on each unit's own clock
#
# Lecture 004 describes a second asynchronous scheme: every unit carries its own random clock
# (independent exponential waiting times) and updates when it rings, so a unit may update twice
# before another has had its turn. Each ring is an ordinary single-unit update, so the energy
# still never rises and the dynamics stop at fixed points; `recall(mode="clock")` runs it beside
# the random-permutation sweeps of `mode="async"`.

# %%
g = torch.Generator().manual_seed(5)
clock_patterns = torch.where(torch.rand(10, 100, generator=g) < 0.5, -1.0, 1.0)
clock_net = Hopfield(100).store(clock_patterns)
clock_probes = flip_bits(clock_patterns, 0.15, g)
for mode in ("async", "clock"):
    out, info = clock_net.recall(clock_probes, mode=mode, seed=0, return_info=True)
    exact = (out == clock_patterns).all(1).float().mean().item()
    print(
        f"{mode:>5}: {exact:.0%} recalled exactly, all at fixed points: "
        f"{bool(clock_net.is_fixed_point(out).all())}, mean sweeps {info.sweeps.float().mean():.1f}"
    )

# %% [markdown]
# ## Learning W: lower the data, raise the valleys next to it
#
# Instead of a formula, the lecture learns W by gradient descent on
# sum_{y in P} E(y) - sum_{y'} E(y'): lower the energy of the patterns and raise the energy of
# the states y' that a few steps of the dynamics reach from them (the spurious valleys nearby).
# The update is W <- W + eta (sum_p y^p y^p^T - sum y' y'^T), started from the Hebbian W;
# `Hopfield(rule="learned")` runs it, with the negatives started at the patterns and evolved for
# `learned_steps` sweeps. At a load where the Hebbian rule has lost most patterns, the learned
# rule keeps them stable.

# %%
g = torch.Generator().manual_seed(3)
load_patterns = torch.where(torch.rand(25, 100, generator=g) < 0.5, -1.0, 1.0)  # P/N = 0.25
for rule in ("hebbian", "learned"):
    model = Hopfield(100, rule=rule, seed=0).store(load_patterns)
    stable = model.is_fixed_point(load_patterns).float().mean().item()
    probes = flip_bits(load_patterns, 0.1, torch.Generator().manual_seed(4))
    exact = (model.recall(probes, seed=0) == load_patterns).all(1).float().mean().item()
    print(
        f"{rule:>8}: {stable:.0%} of the 25 patterns are fixed points, "
        f"{exact:.0%} recalled from 10% flips"
    )
