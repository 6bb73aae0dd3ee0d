"""Datasets: synthetic generation, CSV loading and its errors, splitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.data import load_csv, synthetic
from model.errors import DataError


def test_synthetic_is_seeded_and_shaped() -> None:
    a, b = synthetic(50, 4, 0.1, seed=3), synthetic(50, 4, 0.1, seed=3)
    assert a.x.shape == (50, 4)
    assert a.feature_names == ("x0", "x1", "x2", "x3")
    np.testing.assert_array_equal(a.x, b.x)
    assert a.sha256 == b.sha256
    assert synthetic(50, 4, 0.1, seed=4).sha256 != a.sha256


def test_split_holds_out_a_fraction_without_overlap() -> None:
    data = synthetic(100, 2, 0.0, seed=0)
    train, test = data.split(0.25, seed=1)
    assert (len(train.y), len(test.y)) == (75, 25)
    rows = {tuple(r) for r in train.x.tolist()} & {tuple(r) for r in test.x.tolist()}
    assert not rows


def test_csv_with_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,target,c\n1,2,3,4\n5,6,7,8\n9,10,11,12\n13,14,15,16\n")
    data = load_csv(path, ["c", "a"], "target")
    assert data.feature_names == ("c", "a")
    np.testing.assert_array_equal(data.x[0], [4, 1])
    np.testing.assert_array_equal(data.y, [3, 7, 11, 15])
    assert load_csv(path, None, "target").feature_names == ("a", "b", "c")


@pytest.mark.parametrize(
    ("content", "features", "message"),
    [
        ("a,y\n1,2\n", None, "need at least 4 data rows"),
        ("a,b\n1,2\n3,4\n5,6\n7,8\n", None, "target column 'y' not found"),
        ("a,y\n1,2\n3,4\n5,6\n7,8\n", ["a", "zz"], "feature column(s) ['zz'] not found"),
        ("a,y\n1,2\nx,4\n5,6\n7,8\n", None, "column 'a' is not numeric: 'x'"),
        ("a,y\n1,2\n3,nan\n5,6\n7,8\n", None, "column 'y' is not finite"),
        ("a,y\n1,2,3\n", None, "expected 2 fields, got 3"),
        ("", None, "empty file"),
    ],
)
def test_csv_errors_are_clear(tmp_path: Path, content: str, features: list[str] | None, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_csv(path, features, "y")
    assert message in str(info.value)


def test_missing_csv_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        load_csv(tmp_path / "nope.csv", None, "y")
