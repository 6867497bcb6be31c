"""True-box crops: each digit of a code cut out by the box `generate` recorded, then made MNIST-style."""

from __future__ import annotations

import numpy as np

from parity.codes.generate import CodeSet
from parity.codes.normalize import NoDigit, to_mnist


def box_crop(image: np.ndarray, box: np.ndarray, pad: int = 2) -> np.ndarray:
    """The part of `image` inside `box` (x0, y0, x1, y1; x1/y1 exclusive), `pad` pixels wider on every
    side, clipped to the image."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[max(y0 - pad, 0) : min(y1 + pad, h), max(x0 - pad, 0) : min(x1 + pad, w)]


def digit_crops(codeset: CodeSet, *, min_visible: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Each true digit box (padded 2 px) through `to_mnist` -> uint8 (M, 28, 28) and int64 labels.
    M = N * length unless a digit is unreadable (e.g. pushed off the canvas): such crops are left
    out, as are digits with less than `min_visible` of their ink inside the image."""
    crops, labels = [], []
    for i, (image, code) in enumerate(zip(codeset.images, codeset.codes)):
        for j, box in enumerate(codeset.boxes[i]):
            if codeset.visible is not None and codeset.visible[i, j] < min_visible:
                continue
            try:
                crops.append(to_mnist(box_crop(image, box)))
            except NoDigit:
                continue
            labels.append(int(code[j]))
    return stack_digits(crops, labels)


def stack_digits(crops: list[np.ndarray], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (M, 28, 28) digits and int64 labels; empty arrays of those shapes when M is 0."""
    if not crops:
        return np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    return np.stack(crops), np.array(labels, dtype=np.int64)
