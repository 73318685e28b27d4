"""Robust aggregation kernels against slow references written here with plain loops.

Inputs come from Hypothesis: one client included, values on a coarse grid (so ties are
common and every float64 sum is exact, making equality exact), and ``f`` up to the largest
value each rule's guarantee allows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedswarm.aggregation import (
    AggregationContext,
    Bulyan,
    CenteredClip,
    FLTrust,
    GeometricMedian,
    Krum,
    Median,
    MultiKrum,
    NormBound,
    TrimmedMean,
    aggregator_type,
)
from fedswarm.aggregation.trimmed_mean import trim_count
from fedswarm.params import Params

SETTINGS = settings(max_examples=50, deadline=None)
grid = st.integers(-8, 8).map(lambda k: k / 4)  # exact in float32; sums exact in float64


def ctx(n: int, dim: int) -> AggregationContext:
    params = Params.from_arrays({"w": np.zeros(dim, np.float32)})
    ids = tuple(f"c{i}" for i in range(n))
    return AggregationContext(1, ids, params, np.random.default_rng(0))


@st.composite
def stacks(draw: st.DrawFn, min_clients: int = 1, max_clients: int = 9) -> np.ndarray:
    n = draw(st.integers(min_clients, max_clients))
    dim = draw(st.integers(1, 4))
    return draw(hnp.arrays(np.float32, (n, dim), elements=grid))


def ones(u: np.ndarray) -> np.ndarray:
    return np.ones(len(u), np.float64)


def run(agg: object, u: np.ndarray) -> np.ndarray:
    out = agg(u, ones(u), ctx(*u.shape))  # type: ignore[operator]
    assert out.update.dtype == np.float32
    assert out.update.shape == (u.shape[1],)
    for s in out.scores.values():
        assert s.shape == (len(u),)
    return np.asarray(out.update)


# ---- slow references -------------------------------------------------------------------


def rows(u: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in r] for r in u]


def ref_median(u: np.ndarray) -> list[float]:
    out = []
    for j in range(u.shape[1]):
        col = sorted(r[j] for r in rows(u))
        n = len(col)
        out.append(col[n // 2] if n % 2 else (col[n // 2 - 1] + col[n // 2]) / 2)
    return out


def ref_trimmed(u: np.ndarray, k: int) -> list[float]:
    out = []
    for j in range(u.shape[1]):
        col = sorted(r[j] for r in rows(u))[k : len(u) - k]
        out.append(sum(col) / len(col))
    return out


def sqdist(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


def ref_krum_scores(r: list[list[float]], f: int) -> list[float]:
    n = len(r)
    m = min(max(n - f - 2, 1), n - 1)
    return [sum(sorted(sqdist(r[i], r[j]) for j in range(n) if j != i)[:m]) for i in range(n)]


def mean_of(r: list[list[float]]) -> list[float]:
    return [sum(col) / len(r) for col in zip(*r, strict=True)]


def ref_bulyan(u: np.ndarray, f: int) -> list[float]:
    remaining, chosen = rows(u), list[list[float]]()
    theta = max(len(u) - 2 * f, 1)
    while len(chosen) < theta:
        s = ref_krum_scores(remaining, f)
        best = min(range(len(remaining)), key=lambda i: (s[i], remaining[i]))
        chosen.append(remaining.pop(best))
    beta = max(theta - 2 * f, 1)
    out = []
    for j in range(u.shape[1]):
        col = sorted(c[j] for c in chosen)
        med = ref_median(np.array([[v] for v in col], np.float64))[0]
        near = sorted(range(len(col)), key=lambda i: (abs(col[i] - med), i))[:beta]
        out.append(sum(col[i] for i in near) / beta)
    return out


def ref_weiszfeld(u: np.ndarray, iters: int, tol: float, eps: float) -> list[float]:
    r = rows(u)
    z = mean_of(r)
    for _ in range(iters):
        w = [1 / max(math.sqrt(sqdist(x, z)), eps) for x in r]
        nz = [sum(wi * x[j] for wi, x in zip(w, r, strict=True)) / sum(w) for j in range(len(z))]
        spread = sum(math.sqrt(sqdist(x, z)) for x in r) / len(r)
        moved, z = math.sqrt(sqdist(nz, z)), nz
        if moved <= tol * max(spread, eps):
            break
    return z


def ref_centered_clip(u: np.ndarray, tau: float, iters: int) -> list[float]:
    r, v = rows(u), ref_median(u)
    for _ in range(iters):
        step = [0.0] * len(v)
        for x in r:
            d = math.sqrt(sqdist(x, v))
            c = min(1.0, tau / d) if d > 0 else 1.0
            step = [s + c * (xj - vj) / len(r) for s, xj, vj in zip(step, x, v, strict=True)]
        v = [vj + s for vj, s in zip(v, step, strict=True)]
    return v


def norm(a: list[float]) -> float:
    return math.sqrt(sum(v * v for v in a))


def ref_norm_bound(u: np.ndarray, bound: float) -> list[float]:
    clipped = [[v * min(1.0, bound / norm(x)) if norm(x) > 0 else v for v in x] for x in rows(u)]
    return mean_of(clipped)


def ref_fltrust(u: np.ndarray, g0: list[float]) -> list[float]:
    total, trust = [0.0] * len(g0), 0.0
    for x in rows(u):
        if norm(x) == 0 or norm(g0) == 0:
            continue
        ts = max(0.0, sum(a * b for a, b in zip(x, g0, strict=True)) / (norm(x) * norm(g0)))
        trust += ts
        total = [t + ts * v * norm(g0) / norm(x) for t, v in zip(total, x, strict=True)]
    return [t / trust for t in total] if trust > 0 else [0.0] * len(g0)


def f32(values: list[float]) -> np.ndarray:
    return np.array(values, np.float64).astype(np.float32)


# ---- kernels equal their references ------------------------------------------------------


@SETTINGS
@given(stacks())
def test_median_equals_reference(u: np.ndarray) -> None:
    np.testing.assert_array_equal(run(Median(), u), f32(ref_median(u)))


@SETTINGS
@given(stacks(), st.floats(0, 0.49))
def test_trimmed_mean_equals_reference(u: np.ndarray, beta: float) -> None:
    k = trim_count(len(u), beta)
    assert 2 * k < len(u)
    np.testing.assert_allclose(run(TrimmedMean(beta), u), f32(ref_trimmed(u, k)), rtol=1e-6)


def max_krum_f(n: int) -> int:
    return max((n - 3) // 2, 0)


@SETTINGS
@given(stacks(), st.data())
def test_krum_equals_reference(u: np.ndarray, data: st.DataObject) -> None:
    f = data.draw(st.integers(0, max_krum_f(len(u))))
    out = Krum(f)(u, ones(u), ctx(*u.shape))
    ref = ref_krum_scores(rows(u), f)
    np.testing.assert_array_equal(out.scores["krum"], ref)  # exact on the grid
    best = min(range(len(u)), key=lambda i: (ref[i], rows(u)[i]))
    np.testing.assert_array_equal(out.update, u[best])


@SETTINGS
@given(stacks(), st.data())
def test_multi_krum_equals_reference(u: np.ndarray, data: st.DataObject) -> None:
    f = data.draw(st.integers(0, max_krum_f(len(u))))
    ref = ref_krum_scores(rows(u), f)
    chosen = sorted(range(len(u)), key=lambda i: (ref[i], rows(u)[i]))[: max(len(u) - f, 1)]
    want = mean_of([rows(u)[i] for i in sorted(chosen)])
    np.testing.assert_allclose(run(MultiKrum(f), u), f32(want), rtol=1e-6, atol=1e-7)


@SETTINGS
@given(stacks(max_clients=11), st.data())
def test_bulyan_equals_reference(u: np.ndarray, data: st.DataObject) -> None:
    f = data.draw(st.integers(0, max((len(u) - 3) // 4, 0)))  # n >= 4f + 3
    np.testing.assert_allclose(run(Bulyan(f), u), f32(ref_bulyan(u, f)), rtol=1e-6, atol=1e-7)


@SETTINGS
@given(stacks())
def test_geometric_median_equals_reference(u: np.ndarray) -> None:
    gm = GeometricMedian(iterations=50, tol=1e-9, eps=1e-8)
    want = f32(ref_weiszfeld(u, 50, 1e-9, 1e-8))
    np.testing.assert_allclose(run(gm, u), want, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(stacks(), st.floats(0.1, 4), st.integers(1, 4))
def test_centered_clip_equals_reference(u: np.ndarray, tau: float, iters: int) -> None:
    want = f32(ref_centered_clip(u, tau, iters))
    np.testing.assert_allclose(run(CenteredClip(tau, iters), u), want, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(stacks(), st.floats(0.1, 4))
def test_norm_bound_equals_reference(u: np.ndarray, bound: float) -> None:
    want = f32(ref_norm_bound(u, bound))
    np.testing.assert_allclose(run(NormBound(bound), u), want, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(stacks(), st.data())
def test_fltrust_equals_reference(u: np.ndarray, data: st.DataObject) -> None:
    g0 = data.draw(hnp.arrays(np.float32, (u.shape[1],), elements=grid))
    out = FLTrust(lambda params, rnd: g0)(u, ones(u), ctx(*u.shape))
    want = f32(ref_fltrust(u, [float(v) for v in g0]))
    np.testing.assert_allclose(out.update, want, rtol=1e-5, atol=1e-6)


# ---- invariances -------------------------------------------------------------------------

ORDER_FREE = [
    Median(),
    TrimmedMean(0.2),
    GeometricMedian(),
    CenteredClip(1.0, 3),
    NormBound(1.0),
    Krum(1),
    MultiKrum(1),
    Bulyan(1),
]


@pytest.mark.parametrize("agg", ORDER_FREE, ids=repr)
@SETTINGS
@given(u=stacks(), seed=st.integers(0, 2**32 - 1))
def test_client_order_does_not_matter(agg: object, u: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(len(u))
    np.testing.assert_allclose(run(agg, u[perm]), run(agg, u), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("agg", [Krum(1), MultiKrum(1), Bulyan(1)], ids=repr)
@SETTINGS
@given(n=st.integers(7, 12), seed=st.integers(0, 2**32 - 1))
def test_krum_family_ignores_order_without_ties(agg: object, n: int, seed: int) -> None:
    """Without ties (continuous values): with tied scores any of the tied is a valid pick."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1, (n, 3)).astype(np.float32)
    perm = rng.permutation(n)
    np.testing.assert_allclose(run(agg, u[perm]), run(agg, u), rtol=1e-6, atol=1e-7)


@SETTINGS
@given(stacks(), st.integers(0, 2**32 - 1))
def test_krum_score_follows_its_client(u: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(len(u))
    a = Krum(1)(u, ones(u), ctx(*u.shape)).scores["krum"]
    b = Krum(1)(u[perm], ones(u), ctx(*u.shape)).scores["krum"]
    np.testing.assert_array_equal(b, a[perm])


@pytest.mark.parametrize("agg", [Median(), TrimmedMean(0.2), GeometricMedian()], ids=repr)
@SETTINGS
@given(u=stacks(), data=st.data())
def test_translation_equivariance(agg: object, u: np.ndarray, data: st.DataObject) -> None:
    c = data.draw(hnp.arrays(np.float32, (u.shape[1],), elements=grid))
    np.testing.assert_allclose(run(agg, u + c), run(agg, u) + c, rtol=1e-5, atol=1e-5)


# ---- robustness --------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "f"), [(5, 1), (9, 3), (13, 5), (20, 4)])
def test_with_f_far_outliers_krum_picks_benign_and_median_stays_in_range(n: int, f: int) -> None:
    rng = np.random.default_rng(n * 100 + f)
    benign = rng.normal(0, 1, (n - f, 50)).astype(np.float32)
    outliers = rng.normal(1e3, 10, (f, 50)).astype(np.float32)
    u = np.concatenate([outliers, benign])[rng.permutation(n)]
    is_benign = np.abs(u).max(axis=1) < 100
    picked = run(Krum(f), u)
    assert any(np.array_equal(picked, u[i]) for i in np.flatnonzero(is_benign))
    med = run(Median(), u)
    assert np.all(med >= benign.min(axis=0))
    assert np.all(med <= benign.max(axis=0))
    for agg in (TrimmedMean(f / n + 1e-6), Bulyan(f) if n >= 4 * f + 3 else Median()):
        out = run(agg, u)
        assert np.all(out >= benign.min(axis=0))
        assert np.all(out <= benign.max(axis=0))


def test_geometric_median_minimises_the_sum_of_distances() -> None:
    u = np.random.default_rng(1).normal(0, 1, (15, 8)).astype(np.float32)
    z = run(GeometricMedian(tol=1e-10), u).astype(np.float64)

    def cost(p: np.ndarray) -> float:
        return float(np.linalg.norm(u - p, axis=1).sum())

    for p in [*u.astype(np.float64), u.mean(axis=0), z + 1e-3, z - 1e-3]:
        assert cost(z) <= cost(p) + 1e-6


def test_an_unknown_name_lists_the_registry() -> None:
    assert aggregator_type("krum") is Krum
    with pytest.raises(KeyError, match="aggregation registry; choices: mean, median"):
        aggregator_type("krun")


@pytest.mark.parametrize(
    "make",
    [lambda: TrimmedMean(0.5), lambda: Krum(-1), lambda: NormBound(0), lambda: CenteredClip(0)],
)
def test_options_are_checked_where_they_are_set(make: object) -> None:
    with pytest.raises(ValueError, match="must be"):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("n", range(3, 12))
def test_krum_family_at_f_maximum_equals_reference(n: int) -> None:
    """Hypothesis draws f up to its maximum; here every n meets it exactly."""
    u = np.random.default_rng(n).integers(-8, 9, (n, 3)).astype(np.float32) / 4
    f_krum, f_bulyan = (n - 3) // 2, (n - 3) // 4
    ref = ref_krum_scores(rows(u), f_krum)
    np.testing.assert_array_equal(Krum(f_krum)(u, ones(u), ctx(*u.shape)).scores["krum"], ref)
    want = f32(ref_bulyan(u, f_bulyan))
    np.testing.assert_allclose(run(Bulyan(f_bulyan), u), want, rtol=1e-6, atol=1e-7)


ALL = [*ORDER_FREE, FLTrust(lambda params, rnd: np.ones(3, np.float32))]


@pytest.mark.parametrize("agg", ALL, ids=repr)
def test_one_client_is_its_own_aggregate(agg: object) -> None:
    u = np.array([[0.5, -1.0, 2.0]], np.float32)
    out = run(agg, u)
    if isinstance(agg, NormBound):
        u = u * np.float32(min(1.0, 1.0 / float(np.linalg.norm(u))))
    if isinstance(agg, FLTrust):
        u = u * np.float32(np.sqrt(3) / float(np.linalg.norm(u)))  # rescaled to ||g0||
    np.testing.assert_allclose(out, u[0], rtol=1e-6)
