"""Tests for kwlesson.progress: the seed's confusion matrix as text and as a picture (the log
lines and observers are tested through a run in test_training.py)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


from kwlesson.progress import (  # noqa: E402
    confusion_image,
    format_confusion,
)


def test_format_confusion_prints_numpy_rows():
    m = np.array([[258, 0, 0], [7, 6, 26], [10, 1, 107]])
    assert format_confusion(m) == "[[258   0   0]\n [  7   6  26]\n [ 10   1 107]]"
    big = np.arange(144).reshape(12, 12) * 100  # wide rows are never wrapped
    assert len(format_confusion(big).splitlines()) == 12


def test_confusion_image_is_a_uint8_heatmap_by_row_share():
    m = np.array([[9, 1, 0], [0, 0, 0], [5, 0, 5]])
    img = confusion_image(m, cell=6)
    assert img.shape == (1, 19, 19, 3) and img.dtype == np.uint8
    centre = lambda i, j: img[0, i * 6 + 3, j * 6 + 3]  # noqa: E731
    assert centre(0, 0).sum() < centre(0, 1).sum() < centre(0, 2).sum()  # 90% darker than 10%
    assert (centre(1, 1) == 255).all()  # an empty row stays white, no division by zero
    np.testing.assert_array_equal(centre(2, 0), centre(2, 2))  # same share, same colour
    with pytest.raises(ValueError, match="square"):
        confusion_image(np.zeros((2, 3)))
