"""Server optimisers against values worked out with plain Python floats.

The pseudo-gradient is minus the mean client update. Expected values follow Reddi et al.
2021, Algorithm 2: ``m = b1 m + (1 - b1) g``, the rule's ``v``, ``x = x - lr m / (sqrt(v) +
tau)``, no bias correction, ``v`` started at ``tau**2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedswarm.server_opt import AdaptiveRule, OptimizerState, ServerAdaptive, ServerSGD

X0 = [1.0, -2.0]
G1 = [0.5, 1.0]
G2 = [-1.0, 0.25]


def frozen(values: list[float]) -> np.ndarray:
    """A read-only float32 vector: any in-place write by the code under test raises."""
    out = np.array(values, np.float32)
    out.flags.writeable = False
    return out


def two_steps(
    opt: ServerSGD | ServerAdaptive, grads: tuple[list[float], list[float]] = (G1, G2)
) -> tuple[np.ndarray, np.ndarray, OptimizerState]:
    """Apply two pseudo-gradients from X0; return x1, x2 and the final state."""
    x0 = frozen(X0)
    state = opt.init(x0)
    x1, state = opt.apply(state, x0, frozen(grads[0]))
    assert state.step == 1
    for slot in state.slots.values():
        slot.flags.writeable = False  # the next step must not write into the old state
    x2, state = opt.apply(state, frozen(x1.tolist()), frozen(grads[1]))
    assert state.step == 2
    np.testing.assert_array_equal(x0, X0)
    return x1, x2, state


def close(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-7)


def test_sgd_by_hand() -> None:
    x1, x2, state = two_steps(ServerSGD(lr=0.5))
    close(x1, [1.0 - 0.5 * 0.5, -2.0 - 0.5 * 1.0])  # [0.75, -2.5]
    close(x2, [0.75 + 0.5 * 1.0, -2.5 - 0.5 * 0.25])  # [1.25, -2.625]
    assert dict(state.slots) == {}


def test_sgd_with_lr_one_is_fedavg() -> None:
    """x - 1 * (-mean_update) is x + mean_update, exactly."""
    x = frozen([0.1, -7.0, 3.0e5])
    mean_update = frozen([0.3, 0.125, -1.5])
    new, _ = ServerSGD(lr=1.0).apply(ServerSGD().init(x), x, -mean_update)
    np.testing.assert_array_equal(new, x + mean_update)


def test_sgd_momentum_by_hand() -> None:
    """FedAvgM: v1 = g1, x1 = x0 - lr v1; v2 = b v1 + g2, x2 = x1 - lr v2."""
    lr, beta = 0.5, 0.9
    x1, x2, state = two_steps(ServerSGD(lr=lr, momentum=beta))
    v1 = G1
    x1_ref = [x - lr * v for x, v in zip(X0, v1, strict=True)]
    v2 = [beta * a + b for a, b in zip(v1, G2, strict=True)]  # [-0.55, 1.15]
    x2_ref = [x - lr * v for x, v in zip(x1_ref, v2, strict=True)]
    close(x1, x1_ref)
    close(x2, x2_ref)  # [1.025, -3.075]
    close(state.slots["momentum"], v2)


def test_momentum_state_starts_at_zero() -> None:
    state = ServerSGD(momentum=0.5).init(frozen([1.0, 2.0]))
    assert state.step == 0
    np.testing.assert_array_equal(state.slots["momentum"], [0.0, 0.0])


def sign(a: float) -> float:
    return float((a > 0) - (a < 0))


def adaptive_reference(
    rule: AdaptiveRule, lr: float, b1: float, b2: float, tau: float
) -> list[tuple[list[float], list[float], list[float]]]:
    """Reddi et al. Alg. 2 coordinate by coordinate; (x, m, v) after each of G1, G2."""
    x, m, v = list(X0), [0.0, 0.0], [tau**2, tau**2]
    history = []
    for g in (G1, G2):
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            if rule is AdaptiveRule.ADAM:
                v[i] = b2 * v[i] + (1 - b2) * gi**2
            elif rule is AdaptiveRule.YOGI:
                v[i] = v[i] - (1 - b2) * gi**2 * sign(v[i] - gi**2)
            else:
                v[i] = v[i] + gi**2
            x[i] = x[i] - lr * m[i] / (math.sqrt(v[i]) + tau)
        history.append((list(x), list(m), list(v)))
    return history


@pytest.mark.parametrize("rule", list(AdaptiveRule))
def test_adaptive_two_steps_by_hand(rule: AdaptiveRule) -> None:
    # tau = 0.5: v0 = 0.25 lies among the g**2 values (1/16, 1/4, 1), so Yogi's sign takes
    # all three values, including sign(0) = 0 for the first coordinate of the first step.
    lr, b1, b2, tau = 0.1, 0.9, 0.99, 0.5
    opt = ServerAdaptive(rule, lr=lr, beta1=b1, beta2=b2, tau=tau)
    x1, x2, state = two_steps(opt)
    (x1_ref, _, _), (x2_ref, m2, v2) = adaptive_reference(rule, lr, b1, b2, tau)
    close(x1, x1_ref)
    close(x2, x2_ref)
    close(state.slots["m"], m2)
    close(state.slots["v"], v2)


def test_adam_first_step_written_out() -> None:
    """One coordinate, every number by hand: g = 2, tau = 0.5, b1 = 0.5, b2 = 0.75."""
    opt = ServerAdaptive(AdaptiveRule.ADAM, lr=1.0, beta1=0.5, beta2=0.75, tau=0.5)
    x0 = frozen([3.0])
    x1, state = opt.apply(opt.init(x0), x0, frozen([2.0]))
    # m = 0.5 * 2 = 1; v = 0.75 * 0.25 + 0.25 * 4 = 1.1875; no bias correction.
    close(state.slots["m"], [1.0])
    close(state.slots["v"], [1.1875])
    close(x1, [3.0 - 1.0 / (math.sqrt(1.1875) + 0.5)])


def test_yogi_moves_v_towards_g_squared_by_a_fixed_amount() -> None:
    """v0 = 0.25: for g**2 = 1/16 below it v shrinks, for g**2 = 4 above it v grows."""
    opt = ServerAdaptive(AdaptiveRule.YOGI, lr=0.1, beta1=0.9, beta2=0.5, tau=0.5)
    x0 = frozen([0.0, 0.0])
    _, state = opt.apply(opt.init(x0), x0, frozen([0.25, 2.0]))
    close(state.slots["v"], [0.25 - 0.5 / 16, 0.25 + 0.5 * 4])  # Adam would give 0.15625, 2.125


def test_adagrad_accumulates_squares() -> None:
    _, _, state = two_steps(ServerAdaptive(AdaptiveRule.ADAGRAD, tau=0.5))
    close(state.slots["v"], [0.25 + 0.25 + 1.0, 0.25 + 1.0 + 0.0625])


def test_adaptive_init_state() -> None:
    state = ServerAdaptive(AdaptiveRule.ADAM, tau=0.1).init(frozen([1.0, 2.0, 3.0]))
    assert state.step == 0
    np.testing.assert_array_equal(state.slots["m"], np.zeros(3, np.float32))
    close(state.slots["v"], [0.01, 0.01, 0.01])
    assert state.slots["v"].dtype == np.float32


@pytest.mark.parametrize(
    "opt",
    [ServerSGD(0.5), ServerSGD(0.5, 0.9), *(ServerAdaptive(r) for r in AdaptiveRule)],
    ids=["sgd", "sgdm", "adam", "yogi", "adagrad"],
)
def test_results_stay_float32(opt: ServerSGD | ServerAdaptive) -> None:
    x1, x2, state = two_steps(opt)
    assert x1.dtype == x2.dtype == np.float32
    assert all(s.dtype == np.float32 for s in state.slots.values())
