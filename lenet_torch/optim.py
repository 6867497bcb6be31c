"""Adam with Keras's update rule, so one recipe means the same optimizer in both frameworks.

keras.optimizers.Adam (Keras 3) and torch.optim.Adam differ in where epsilon goes:
    Keras: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t);  w -= alpha * m / (sqrt(v) + eps)
    torch: w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
and in their defaults (eps 1e-7 vs 1e-8). One more, found by the float64 parity test: Keras computes
the bias corrections from `ops.cast(beta, dtype)`, and a Python float becomes a float32 tensor
before that cast, so its powers use float32-rounded betas (0.999 -> 0.99900001287...), a 7e-6
relative change of alpha. The m and v updates use the betas unrounded. This optimizer applies the
Keras rule, operation by operation in Keras's order, so float64 training matches Keras to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _keras_adam_update(params, grads, ms, vs, alpha, b1: float, b2: float, eps: float) -> None:
    """One Keras Adam update of every tensor of a group, in Keras's order of operations."""
    # m += (g - m) * (1 - b1)
    delta = torch._foreach_sub(grads, ms)
    torch._foreach_mul_(delta, 1 - b1)
    torch._foreach_add_(ms, delta)
    # v += (g^2 - v) * (1 - b2)
    delta = torch._foreach_mul(grads, grads)
    torch._foreach_sub_(delta, vs)
    torch._foreach_mul_(delta, 1 - b2)
    torch._foreach_add_(vs, delta)
    # w -= m * alpha / (sqrt(v) + eps)   (same operations as Keras, in place where it changes nothing)
    update = torch._foreach_mul(ms, alpha)
    denom = torch._foreach_sqrt(vs)
    torch._foreach_add_(denom, eps)
    torch._foreach_div_(update, denom)
    torch._foreach_sub_(params, update)


class KerasAdam(torch.optim.Optimizer):
    """compile=True fuses the update into one generated kernel (torch.compile): faster steps, a few
    seconds of compilation, and rounding no longer guaranteed identical to Keras's."""

    def __init__(self, params, lr: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7, compile: bool = False):
        super().__init__(params, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))
        self._compiled = compile
        self._update = torch.compile(_keras_adam_update, fullgraph=True) if compile else _keras_adam_update

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, b1, b2, eps = group["lr"], group["beta_1"], group["beta_2"], group["epsilon"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self.state[p] for p in params]
            for state, p in zip(states, params):
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
            step = states[0]["step"] + 1
            for state in states:
                state["step"] = step
            b1_power, b2_power = float(np.float32(b1)) ** step, float(np.float32(b2)) ** step  # as Keras, above
            alpha = lr * math.sqrt(1 - b2_power) / (1 - b1_power)
            grads = [p.grad for p in params]
            ms = [s["m"] for s in states]
            vs = [s["v"] for s in states]
            # alpha as a tensor, so a compiled update is not recompiled for every new value
            if self._compiled:
                alpha = torch.tensor(alpha, dtype=params[0].dtype, device=params[0].device)
            self._update(params, grads, ms, vs, alpha, b1, b2, eps)
        return loss
