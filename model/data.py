"""Datasets for training and evaluation: synthetic linear data or a CSV with named columns."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """Feature matrix ``x`` (rows x features), target ``y`` and where they came from."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    source: str
    sha256: str

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def split(self, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """Shuffle with ``seed`` and split into (train, held-out test)."""
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test fraction must be between 0 and 1, got {test_fraction}")
        n = len(self.y)
        n_test = max(1, round(n * test_fraction))
        if n - n_test < 2:
            raise DataError(f"need at least {n_test + 2} rows to split, got {n}")
        order = np.random.default_rng(seed).permutation(n)
        test_idx, train_idx = order[:n_test], order[n_test:]
        return self._subset(train_idx, "train"), self._subset(test_idx, "test")

    def _subset(self, idx: np.ndarray, part: str) -> Dataset:
        return Dataset(
            x=self.x[idx],
            y=self.y[idx],
            feature_names=self.feature_names,
            target_name=self.target_name,
            source=f"{self.source}[{part}]",
            sha256=self.sha256,
        )


def _hash_arrays(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.float32).tobytes())
    return digest.hexdigest()


def synthetic(n_samples: int, n_features: int, noise: float, seed: int) -> Dataset:
    """Rows of ``y = x @ w + b + noise`` with weights and bias drawn from ``seed``."""
    if n_samples < 4:
        raise DataError(f"--samples must be at least 4, got {n_samples}")
    if n_features < 1:
        raise DataError(f"--features must be at least 1, got {n_features}")
    if noise < 0:
        raise DataError(f"--noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-3.0, 3.0, size=n_features)
    bias = rng.uniform(-1.0, 1.0)
    x = rng.normal(0.0, 1.0, size=(n_samples, n_features))
    y = x @ weights + bias + rng.normal(0.0, noise, size=n_samples)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    names = tuple(f"x{i}" for i in range(n_features))
    source = f"synthetic(samples={n_samples}, features={n_features}, noise={noise}, seed={seed})"
    return Dataset(x32, y32, names, "y", source, _hash_arrays(x32, y32))


def load_csv(path: Path, features: list[str] | None, target: str) -> Dataset:
    """Read ``path`` with a header row; ``features`` defaults to every column except ``target``."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty file, expected a header row")
    header = [h.strip() for h in header]
    if target not in header:
        raise DataError(f"{path}: target column {target!r} not found; columns are {header}")
    feature_names = features or [h for h in header if h != target]
    missing = [f for f in feature_names if f not in header]
    if missing:
        raise DataError(f"{path}: feature column(s) {missing} not found; columns are {header}")
    if not feature_names:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    cols = [header.index(f) for f in feature_names]
    tcol = header.index(target)
    rows_x: list[list[float]] = []
    rows_y: list[float] = []
    for lineno, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}")
        rows_x.append([_number(path, lineno, feature_names[i], row[c]) for i, c in enumerate(cols)])
        rows_y.append(_number(path, lineno, target, row[tcol]))
    if len(rows_y) < 4:
        raise DataError(f"{path}: need at least 4 data rows, got {len(rows_y)}")
    x = np.asarray(rows_x, dtype=np.float32)
    y = np.asarray(rows_y, dtype=np.float32)
    return Dataset(x, y, tuple(feature_names), target, str(path), hashlib.sha256(raw).hexdigest())


def _number(path: Path, lineno: int, column: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{path}:{lineno}: column {column!r} is not numeric: {cell!r}") from None
    if not np.isfinite(value):
        raise DataError(f"{path}:{lineno}: column {column!r} is not finite: {cell!r}")
    return value
