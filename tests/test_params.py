"""Params and ParamSpec: the flat-vector view of a model and its way back to named tensors."""

from __future__ import annotations

import numpy as np
import pytest

from fedswarm.params import Params, ParamSpec, TensorSpec


def mixed_arrays() -> dict[str, np.ndarray]:
    """A float32 weight and bias around an int64 buffer (BatchNorm's step counter)."""
    return {
        "fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
        "bn.num_batches_tracked": np.array(41, dtype=np.int64),
        "fc.bias": np.array([-1.5, 0.0, 2.25], dtype=np.float32),
    }


def test_spec_of_records_names_shapes_dtypes_in_order() -> None:
    spec = ParamSpec.of(mixed_arrays())
    assert spec.tensors == (
        TensorSpec("fc.weight", (2, 3), "float32"),
        TensorSpec("bn.num_batches_tracked", (), "int64"),
        TensorSpec("fc.bias", (3,), "float32"),
    )
    assert spec.dim == 6 + 1 + 3
    assert spec.offsets == (0, 6, 7, 10)
    assert all(type(o) is int for o in spec.offsets)


def test_flatten_concatenates_in_spec_order_as_float32() -> None:
    arrays = mixed_arrays()
    flat = ParamSpec.of(arrays).flatten(arrays)
    assert flat.dtype == np.float32
    expected = [0, 0.25, 0.5, 0.75, 1.0, 1.25, 41, -1.5, 0.0, 2.25]
    np.testing.assert_array_equal(flat, np.array(expected, np.float32))


def test_round_trip_restores_values_shapes_and_dtypes() -> None:
    arrays = mixed_arrays()
    params = Params.from_arrays(arrays)
    back = params.arrays()
    assert list(back) == list(arrays)
    for name, original in arrays.items():
        assert back[name].dtype == original.dtype, name
        assert back[name].shape == original.shape, name
        np.testing.assert_array_equal(back[name], original)


def test_float32_tensors_are_views_of_the_flat_vector() -> None:
    params = Params.from_arrays(mixed_arrays())
    back = params.arrays()
    assert np.shares_memory(back["fc.weight"], params.flat)
    assert not np.shares_memory(back["bn.num_batches_tracked"], params.flat)


def test_flat_is_read_only_and_a_private_copy() -> None:
    source = np.array([1.0, 2.0, 3.0], np.float32)
    params = Params(ParamSpec.of({"w": source}), source)
    source[0] = 99.0  # the caller's array stays the caller's
    assert params.flat[0] == 1.0
    assert not params.flat.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        params.flat[1] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        params.arrays()["w"][0] = 5.0


def test_params_casts_a_float64_vector_to_float32() -> None:
    spec = ParamSpec.of({"w": np.zeros(2, np.float32)})
    params = Params(spec, np.array([0.5, 1.5]))
    assert params.flat.dtype == np.float32
    np.testing.assert_array_equal(params.flat, [0.5, 1.5])


def test_replace_keeps_the_layout_and_checks_the_length() -> None:
    params = Params.from_arrays(mixed_arrays())
    new = params.replace(np.ones(params.dim, np.float32))
    assert new.spec is params.spec
    np.testing.assert_array_equal(new.flat, np.ones(10, np.float32))
    assert params.flat[1] == 0.25  # the original is untouched
    with pytest.raises(ValueError, match="length 10, got shape \\(9,\\)"):
        params.replace(np.ones(9, np.float32))


def test_empty_model() -> None:
    params = Params.from_arrays({})
    assert params.dim == 0
    assert params.flat.shape == (0,)
    assert params.arrays() == {}


def test_flatten_names_missing_and_unexpected_tensors() -> None:
    arrays = mixed_arrays()
    spec = ParamSpec.of(arrays)
    wrong = {**arrays, "fc.bais": arrays["fc.bias"]}
    del wrong["fc.bias"]
    with pytest.raises(ValueError, match=r"missing \['fc.bias'\], unexpected \['fc.bais'\]"):
        spec.flatten(wrong)


def test_flatten_refuses_the_right_names_in_a_different_order() -> None:
    arrays = mixed_arrays()
    reordered = dict(reversed(list(arrays.items())))
    with pytest.raises(ValueError, match="different order"):
        ParamSpec.of(arrays).flatten(reordered)


def test_flatten_names_the_tensor_of_the_wrong_shape() -> None:
    arrays = mixed_arrays()
    spec = ParamSpec.of(arrays)
    arrays["fc.weight"] = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"'fc.weight' has shape \(3, 2\), expected \(2, 3\)"):
        spec.flatten(arrays)


def test_check_refuses_wrong_length_rank_and_dtype() -> None:
    spec = ParamSpec.of({"w": np.zeros((2, 2), np.float32)})
    spec.check(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="length 4"):
        spec.check(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="length 4"):
        spec.check(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="float32, got float64"):
        spec.check(np.zeros(4, np.float64))
    with pytest.raises(ValueError, match="float32, got float64"):
        spec.unflatten(np.zeros(4, np.float64))


def test_sha256_is_a_golden_digest_of_the_float32_bytes() -> None:
    params = Params.from_arrays({"w": np.array([1.0, 2.0, 3.0], np.float32)})
    # Golden value: sha256 of the little-endian float32 bytes of [1, 2, 3].
    assert params.sha256() == "8e628779e6a74ee0b36991c10158f63cafec7d340ad4e075592502c8708524dd"


def test_sha256_is_stable_across_copies_and_sensitive_to_values() -> None:
    params = Params.from_arrays(mixed_arrays())
    same = Params.from_arrays(mixed_arrays())
    assert params.sha256() == same.sha256() == params.replace(params.flat.copy()).sha256()
    bumped = params.flat.copy()
    bumped[-1] = np.nextafter(bumped[-1], np.float32(np.inf))
    assert params.replace(bumped).sha256() != params.sha256()
