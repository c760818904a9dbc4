"""Step-size adaptation during warm-up: dual averaging towards a target acceptance rate.

Nesterov's dual averaging as used by NUTS (Hoffman & Gelman 2014, section 3.2.1): after warm-up
iteration t with mean acceptance probability a_t,

    H_t = (1 - 1/(t + t0)) H_{t-1} + (delta - a_t) / (t + t0)
    log eps_t = mu - sqrt(t) / gamma * H_t,                   mu = log(10 eps_0)
    log eps_bar_t = t^-kappa log eps_t + (1 - t^-kappa) log eps_bar_{t-1}

and the sampling phase uses eps_bar (the averaged iterate), which is stable. The acceptance
statistic is averaged over the chains of the batch (one step size shared by all chains).
Defaults gamma = 0.05, t0 = 10, kappa = 0.75 are the paper's.
"""

from __future__ import annotations

import math


class DualAveraging:
    """Tunes a step size so that the mean acceptance probability approaches ``target_accept``.

    Use ``update(accept_prob) -> step size for the next iteration`` during warm-up and
    ``final_step_size`` afterwards.
    """

    def __init__(
        self,
        step_size: float,
        target_accept: float,
        gamma: float = 0.05,
        t0: float = 10.0,
        kappa: float = 0.75,
    ) -> None:
        if not step_size > 0:
            raise ValueError(f"step_size: expected a number > 0, got {step_size}")
        if not 0.0 < target_accept < 1.0:
            raise ValueError(f"target_accept: expected a number in (0, 1), got {target_accept}")
        self.target_accept = float(target_accept)
        self.gamma, self.t0, self.kappa = float(gamma), float(t0), float(kappa)
        self.mu = math.log(10.0 * step_size)  # bias towards larger steps, as in the paper
        self.t = 0
        self.h_bar = 0.0
        self.log_step = math.log(step_size)
        self.log_step_bar = math.log(step_size)

    def update(self, accept_prob: float) -> float:
        if math.isnan(accept_prob):
            accept_prob = 0.0  # a NaN statistic means every proposal failed: treat as rejection
        accept_prob = min(max(accept_prob, 0.0), 1.0)
        self.t += 1
        t = self.t
        eta = 1.0 / (t + self.t0)
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target_accept - accept_prob)
        self.log_step = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        weight = t ** (-self.kappa)
        self.log_step_bar = weight * self.log_step + (1.0 - weight) * self.log_step_bar
        return math.exp(self.log_step)

    @property
    def final_step_size(self) -> float:
        return math.exp(self.log_step_bar)
