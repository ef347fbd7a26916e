"""Per-step schedules of the NVIDIA projector (stylegan2-ada-pytorch ``projector.py``): learning rate and annealed
w-noise.

With ``t = step / num_steps``::

    lr(t)      = peak * min(1, t / rampup) * (0.5 - 0.5 * cos(pi * min(1, (1 - t) / rampdown)))
    w_noise(t) = w_std * initial * max(0, 1 - t / ramp) ** 2

A ramp length of 0 switches that ramp off, so the defaults reproduce a constant learning rate (Image2StyleGAN).
"""

from __future__ import annotations

import math

from wplus.errors import ConfigError

__all__ = ["learning_rate", "w_noise_scale", "check_fraction"]


def check_fraction(name: str, value: float) -> float:
    """A ramp length as a fraction of the run: finite and in [0, 1]."""
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"got {name}={value}, expected a fraction of the run in [0, 1]")
    return value


def learning_rate(step: int, num_steps: int, peak: float, *, rampup: float = 0.0, rampdown: float = 0.0) -> float:
    """Learning rate at 0-based ``step``: linear warm-up over ``rampup``, cosine ramp-down over ``rampdown``.

    Example:
        >>> learning_rate(0, 100, 0.1, rampup=0.05)  # NVIDIA's first step runs at lr 0
        0.0
        >>> learning_rate(50, 100, 0.1, rampup=0.05, rampdown=0.25)
        0.1
    """
    t = step / max(num_steps, 1)
    lr = peak
    if rampdown > 0:
        lr *= 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1.0 - t) / rampdown))
    if rampup > 0:
        lr *= min(1.0, t / rampup)
    return lr


def w_noise_scale(step: int, num_steps: int, initial: float, *, ramp: float = 0.75) -> float:
    """Factor of ``w_std`` for the Gaussian noise added to w at 0-based ``step`` (0 once ``t >= ramp``)."""
    if initial == 0 or ramp <= 0:
        return 0.0
    t = step / max(num_steps, 1)
    return initial * max(0.0, 1.0 - t / ramp) ** 2
