"""Both halves of FedProx and SCAFFOLD (and plain local SGD), checked with hand numbers.

All numbers below are dyadic fractions, so float32 arithmetic is exact and results are
compared for equality.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedswarm.algorithms.fedprox import FedProx, ProxStep
from fedswarm.algorithms.local_sgd import LocalSGD, LocalSGDStep
from fedswarm.algorithms.scaffold import CLIENT_CONTROL, Scaffold, ScaffoldExtra, ScaffoldStep
from fedswarm.messages import ClientMemory, FitRes, ReplyExtra
from fedswarm.training import LocalFit, LocalTraining


def f32(*values: float) -> np.ndarray:
    out = np.array(values, np.float32)
    out.flags.writeable = False  # the code under test must not write into its inputs
    return out


def local_fit(num_steps: int, dim: int = 2) -> LocalFit:
    return LocalFit(np.zeros(dim, np.float32), num_examples=10, num_steps=num_steps, train_loss=0.0)


def fit_res(client_id: str, extra: ReplyExtra | None, rnd: int = 3) -> FitRes:
    return FitRes(client_id, rnd, np.zeros(2, np.float32), 5, 4, 0.0, extra)


# epochs defaults to 1, so a step count needs epochs=None beside it.
TRAINING = LocalTraining(batch_size=8, lr=0.125, epochs=None, steps=4)

# --- local SGD and FedProx ---------------------------------------------------------------


def test_local_sgd_sends_no_correction_and_keeps_no_memory() -> None:
    step = LocalSGD().instruction(LocalSGD().init(3))
    assert isinstance(step, LocalSGDStep)
    assert step.correction({}, 3).is_identity
    memory: ClientMemory = {"other": f32(1.0)}
    extra, new_memory = step.finish(memory, f32(1.0, 2.0), local_fit(4), TRAINING)
    assert extra is None
    assert new_memory == memory


@pytest.mark.parametrize("mu", [0.0, 0.01, 1.5])
def test_fedprox_instructs_the_proximal_coefficient(mu: float) -> None:
    server = FedProx(mu)
    slots = server.init(4)
    step = server.instruction(slots)
    assert step == ProxStep(mu)
    correction = step.correction({}, 4)
    assert correction.mu == mu
    assert correction.shift is None
    assert correction.is_identity == (mu == 0.0)


def test_fedprox_keeps_no_state_on_either_side() -> None:
    server = FedProx(0.1)
    slots = server.init(2)
    assert dict(slots) == {}
    assert server.absorb(slots, [fit_res("a", None)], num_clients=5) == slots
    memory: ClientMemory = {"kept": f32(2.0)}
    extra, new_memory = ProxStep(0.1).finish(memory, f32(1.0, 1.0), local_fit(3), TRAINING)
    assert extra is None
    assert new_memory == memory


def test_fedprox_refuses_negative_mu() -> None:
    with pytest.raises(ValueError, match=r"mu must be finite and non-negative, got -0\.5"):
        FedProx(-0.5)


# --- SCAFFOLD, client half -----------------------------------------------------------------

C = f32(1.0, -2.0)  # server control variate
C_I = f32(0.5, 0.25)  # this client's control variate


def test_scaffold_shift_without_memory_is_c() -> None:
    correction = ScaffoldStep(C).correction({}, 2)
    assert correction.mu == 0.0
    assert correction.shift is not None
    np.testing.assert_array_equal(correction.shift, [1.0, -2.0])


def test_scaffold_shift_is_c_minus_c_i() -> None:
    correction = ScaffoldStep(C).correction({CLIENT_CONTROL: C_I}, 2)
    assert correction.shift is not None
    np.testing.assert_array_equal(correction.shift, [0.5, -2.25])


def test_scaffold_finish_option_two_by_hand() -> None:
    """c_i+ = c_i - c + (x - y_i) / (K lr), with K = 4, lr = 1/8, so K lr = 1/2."""
    update = f32(-0.5, 0.25)  # y_i - x
    memory: ClientMemory = {CLIENT_CONTROL: C_I, "other": f32(7.0)}
    extra, new_memory = ScaffoldStep(C).finish(memory, update, local_fit(4), TRAINING)
    # (x - y_i) / (K lr) = [0.5, -0.25] / 0.5 = [1, -0.5]
    # c_i+ = [0.5 - 1 + 1, 0.25 + 2 - 0.5] = [0.5, 1.75]
    np.testing.assert_array_equal(new_memory[CLIENT_CONTROL], [0.5, 1.75])
    assert isinstance(extra, ScaffoldExtra)
    np.testing.assert_array_equal(extra.control_delta, [0.0, 1.5])  # c_i+ - c_i
    np.testing.assert_array_equal(new_memory["other"], [7.0])  # other memory survives
    np.testing.assert_array_equal(memory[CLIENT_CONTROL], [0.5, 0.25])  # input untouched


def test_scaffold_finish_uses_the_steps_actually_taken() -> None:
    """K is the learner's ``num_steps``, not the configured one: 2 steps of 1/8 -> K lr = 1/4."""
    extra, new_memory = ScaffoldStep(C).finish({}, f32(-0.5, 0.25), local_fit(2), TRAINING)
    # c_i = 0: c_i+ = -c + [0.5, -0.25] / 0.25 = [-1 + 2, 2 - 1]
    np.testing.assert_array_equal(new_memory[CLIENT_CONTROL], [1.0, 1.0])
    assert isinstance(extra, ScaffoldExtra)
    np.testing.assert_array_equal(extra.control_delta, [1.0, 1.0])


def test_scaffold_finish_after_zero_steps_learns_nothing() -> None:
    memory: ClientMemory = {CLIENT_CONTROL: C_I}
    extra, new_memory = ScaffoldStep(C).finish(memory, f32(0.0, 0.0), local_fit(0), TRAINING)
    assert isinstance(extra, ScaffoldExtra)
    np.testing.assert_array_equal(extra.control_delta, [0.0, 0.0])
    assert new_memory == memory


def test_scaffold_memory_round_trips_into_the_next_correction() -> None:
    _, memory = ScaffoldStep(C).finish({}, f32(-0.5, 0.25), local_fit(4), TRAINING)
    # c_i+ = -c + [1, -0.5] = [0, 1.5]; next round with c' = [1, 1]: shift = [1, -0.5]
    correction = ScaffoldStep(f32(1.0, 1.0)).correction(memory, 2)
    assert correction.shift is not None
    np.testing.assert_array_equal(correction.shift, [1.0, -0.5])


# --- SCAFFOLD, server half -----------------------------------------------------------------


def test_scaffold_server_starts_at_zero_and_sends_c() -> None:
    slots = Scaffold().init(3)
    np.testing.assert_array_equal(slots["control"], np.zeros(3, np.float32))
    assert slots["control"].dtype == np.float32
    step = Scaffold().instruction({"control": C})
    assert isinstance(step, ScaffoldStep)
    np.testing.assert_array_equal(step.control, C)


def test_scaffold_absorb_by_hand() -> None:
    """c += |S| / N * mean(delta_c): 2 of 4 clients, deltas [2, 0] and [0, 4]."""
    slots = {"control": f32(1.0, 1.0)}
    replies = [
        fit_res("a", ScaffoldExtra(f32(2.0, 0.0))),
        fit_res("b", ScaffoldExtra(f32(0.0, 4.0))),
    ]
    new = Scaffold().absorb(slots, replies, num_clients=4)
    # mean = [1, 2]; step = 2/4 * [1, 2] = [0.5, 1]
    np.testing.assert_array_equal(new["control"], [1.5, 2.0])
    assert new["control"].dtype == np.float32
    np.testing.assert_array_equal(slots["control"], [1.0, 1.0])  # input untouched


def test_scaffold_absorb_with_every_client_adds_the_plain_mean() -> None:
    replies = [fit_res(c, ScaffoldExtra(f32(d, -d))) for c, d in (("a", 1.0), ("b", 2.0))]
    new = Scaffold().absorb({"control": f32(0.0, 0.0)}, replies, num_clients=2)
    np.testing.assert_array_equal(new["control"], [1.5, -1.5])


class OtherExtra(ReplyExtra):
    pass


@pytest.mark.parametrize("extra", [None, OtherExtra()], ids=["missing", "foreign"])
def test_scaffold_absorb_names_the_client_without_a_control_delta(
    extra: ReplyExtra | None,
) -> None:
    replies = [fit_res("alice", ScaffoldExtra(f32(1.0, 1.0))), fit_res("bob", extra, rnd=7)]
    with pytest.raises(ValueError, match="round 7: client bob: no SCAFFOLD control delta"):
        Scaffold().absorb({"control": f32(0.0, 0.0)}, replies, num_clients=2)
