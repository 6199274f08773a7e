"""Embedded multi-modal multi-task (M3T) dataset, generated in code from a seed.

Each sample is a scene: a 3×16×16 **image** of one coloured shape (hollow
square, disc, triangle or cross; red, green, blue or yellow) at a random position and
size over noise; a 6-token **question** about it; and a 32-step **sensor**
series whose waveform encodes an activity. Tasks:

* ``shape`` (4 classes) — needs the image;
* ``vqa`` (10 answers: 4 colours, 4 shapes, yes, no) — needs the image *and* the
  question ("what colour is the shape ?", "what shape is it ?", "is the shape
  <colour> ?"): neither modality alone can answer;
* ``activity`` (4 classes: still, walk, run, jump) — needs the sensor.

    >>> data = make_m3t_dataset(100, seed=0)
    >>> tuple(data.image.shape), tuple(data.text.shape), tuple(data.sensor.shape)
    ((100, 3, 16, 16), (100, 6), (100, 32))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TASKS: dict[str, int] = {"shape": 4, "vqa": 10, "activity": 4}
MODALITIES: tuple[str, ...] = ("image", "text", "sensor")

IMAGE_SIZE = 16
SENSOR_LEN = 32
VOCAB = ("<pad>", "what", "colour", "shape", "is", "it", "the", "?", "red", "green", "blue", "yellow")
TEXT_LEN = 6
COLOURS_RGB = np.array([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.2, 1.0], [1.0, 0.9, 0.1]])
ANSWER_YES, ANSWER_NO = 8, 9

_T = {w: i for i, w in enumerate(VOCAB)}
_QUESTIONS = np.array(
    [
        [_T["what"], _T["colour"], _T["is"], _T["the"], _T["shape"], _T["?"]],
        [_T["what"], _T["shape"], _T["is"], _T["it"], _T["?"], _T["<pad>"]],
        [_T["is"], _T["the"], _T["shape"], 0, _T["?"], _T["<pad>"]],  # slot 3: the colour asked about
    ]
)


@dataclass
class M3TData:
    """Tensors of a dataset (or a subset): inputs per modality and labels per task."""

    image: torch.Tensor
    text: torch.Tensor
    sensor: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.text)

    def subset(self, indices: np.ndarray | torch.Tensor) -> M3TData:
        """The samples at ``indices`` (a copy)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return M3TData(self.image[idx], self.text[idx], self.sensor[idx], {k: v[idx] for k, v in self.labels.items()})

    def inputs(self, indices: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The model's input dict, for all samples or ``indices``."""
        if indices is None:
            return {"image": self.image, "text": self.text, "sensor": self.sensor}
        return {"image": self.image[indices], "text": self.text[indices], "sensor": self.sensor[indices]}


def _shape_masks(rng: np.random.Generator, n: int) -> np.ndarray:
    """(4, n, 16, 16) boolean masks of (hollow) square, (filled) circle, triangle and cross per sample."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(float)
    cx = rng.uniform(6.5, 8.5, (n, 1, 1))
    cy = rng.uniform(6.5, 8.5, (n, 1, 1))
    s = rng.uniform(4.0, 5.5, (n, 1, 1))
    dx, dy = np.abs(xx - cx), np.abs(yy - cy)
    square = (np.maximum(dx, dy) <= s * 0.85) & (np.maximum(dx, dy) >= s * 0.85 - 1.5)  # hollow frame
    circle = dx**2 + dy**2 <= s**2
    top = cy - s
    triangle = (yy >= top) & (yy <= cy + s) & (dx <= (yy - top) * 0.55)
    arm = s / 3.0
    cross = ((dx <= arm) & (dy <= s)) | ((dy <= arm) & (dx <= s))
    return np.stack([square, circle, triangle, cross])


def make_m3t_dataset(n: int, seed: int) -> M3TData:
    """Generate ``n`` scenes deterministically from ``seed`` (vectorized numpy)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    shape = rng.integers(0, 4, n)
    colour = rng.integers(0, 4, n)
    masks = _shape_masks(rng, n)[shape, np.arange(n)]
    background = rng.uniform(0.0, 0.3, (n, 3, 1, 1))
    image = np.where(masks[:, None], COLOURS_RGB[colour][:, :, None, None], background)
    image = image + rng.normal(0.0, 0.08, image.shape)

    qtype = rng.integers(0, 3, n)
    text = _QUESTIONS[qtype].copy()
    asked = np.where(rng.random(n) < 0.5, colour, (colour + rng.integers(1, 4, n)) % 4)  # yes/no balanced
    text[qtype == 2, 3] = _T["red"] + asked[qtype == 2]
    vqa = np.select(
        [qtype == 0, qtype == 1],
        [colour, 4 + shape],
        np.where(asked == colour, ANSWER_YES, ANSWER_NO),
    )

    activity = rng.integers(0, 4, n)
    t = np.arange(SENSOR_LEN) / SENSOR_LEN
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
    amplitude = rng.uniform(0.8, 1.2, (n, 1))
    walk = np.sin(2 * np.pi * 2 * t + phase)
    run = np.sin(2 * np.pi * 6 * t + phase)
    jump = np.sign(np.sin(2 * np.pi * 1 * t + phase))
    still = np.zeros((n, SENSOR_LEN))
    waves = np.stack([still, walk, run, jump])[activity, np.arange(n)]
    sensor = amplitude * waves + rng.normal(0.0, 0.3, (n, SENSOR_LEN))

    labels = {"shape": shape, "vqa": vqa, "activity": activity}
    return M3TData(
        image=torch.tensor(image, dtype=torch.float32),
        text=torch.tensor(text, dtype=torch.long),
        sensor=torch.tensor(sensor, dtype=torch.float32),
        labels={k: torch.tensor(v, dtype=torch.long) for k, v in labels.items()},
    )


def dirichlet_partition(
    labels: np.ndarray, n_clients: int, alpha: float, rng: np.random.Generator, min_samples: int = 2,
    max_tries: int = 1000,
) -> list[np.ndarray]:  # fmt: skip
    """Non-IID label-skew split (Hsu et al. 2019, arXiv 1909.06335).

    For each class, its (shuffled) indices are split among clients in
    proportions p ~ Dirichlet(α·1); small α gives each client few classes.
    Redrawn until every client has ``min_samples``; every index is used once.
    """
    labels = np.asarray(labels)
    if n_clients < 1 or alpha <= 0:
        raise ValueError("n_clients must be at least 1 and alpha positive")
    if n_clients * min_samples > len(labels):
        raise ValueError(f"cannot give {n_clients} clients {min_samples} samples each from {len(labels)} samples")
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, alpha)))[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= min_samples:
            return out
    raise ValueError(f"no Dirichlet({alpha}) split gave every client {min_samples} samples in {max_tries} tries")
