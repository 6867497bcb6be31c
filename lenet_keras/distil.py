"""--distil-from in Keras, side by side with LitLeNet5.soft_target_losses (lenet_torch/module.py).

Each training batch's loss is (1 - w) x the labels' cross-entropy + w x T^2 x the cross-entropy from the
teachers' mean softmax at temperature T to the student's (Hinton et al. 2015). The teachers run inside the
training step, on the batch the student sees, as in Keras's own `keras.distillation.Distiller`. That class
is not used: it wraps the student in a second model (its checkpoints and saved file would be the wrapper's),
takes one teacher, and ignores sample weights, which carry the padding of multi-device batches
(lenet_keras.data.pad). So the term is added in the student's own `compute_loss`, where Keras means custom
losses to go, with Keras's CategoricalCrossentropy reducing it exactly as the compiled loss is reduced.
Validation and test (training=False) score the labels' loss alone, as in Lightning, and the epoch's training
loss in metrics.json is the labels' part of the mixed loss (LABELS_LOSS) there too.

With --distil-images mnist the teachers teach some images only, and the loss must know which. Lightning's batch
carries the flags as a fourth tensor; Keras's `fit` has no slot for one (its sample weights are the padding's),
so an image the teachers teach comes with TAUGHT added to its label (lenet_keras.data), and the loss and the
metrics take it off again (`untagged`) before anything else sees the labels.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import ops

from lenet_keras.checkpoint import model_from_weights


TAUGHT = 10  # added to the label of an image the teachers teach (--distil-images mnist): 3 is a 3, 13 a taught 3
LABELS_LOSS = "labels_loss"  # the epoch's training loss in metrics.json: the labels' cross-entropy, as Lightning's train_loss


def labels_loss() -> keras.metrics.Metric:
    """Keras's "loss" is the mixed loss; this metric keeps the labels' part, which a run without teachers reports."""
    return keras.metrics.SparseCategoricalCrossentropy(name=LABELS_LOSS)


def load_teachers(paths: tuple[Path, ...], dtype: str) -> list[keras.Model]:
    """Frozen LeNet-5s from any model files parity.weights.reading reads (a torch .ckpt needs torch)."""
    from parity.weights.reading import read_weights

    teachers = [model_from_weights(read_weights(path), dtype=dtype) for path in paths]
    for teacher in teachers:
        teacher.trainable = False
    return teachers


def logits(probabilities):
    """The logits behind LeNet-5's softmax output, up to a per-image constant (which softmax ignores). The floor,
    the dtype's smallest normal number, keeps a probability that underflowed to 0 from giving log(0) = -inf."""
    tiny = np.finfo(keras.backend.standardize_dtype(probabilities.dtype)).tiny
    return ops.log(ops.maximum(probabilities, tiny))


def tagged(labels: np.ndarray, taught: np.ndarray) -> np.ndarray:
    """The labels of a --distil-images mnist run's training images, TAUGHT added where the teachers teach."""
    return labels + TAUGHT * taught.astype(labels.dtype)


def untagged(y):
    """Labels and taught flags (0 or 1, in y's dtype) from `tagged` labels."""
    return ops.mod(y, TAUGHT), ops.floor_divide(y, TAUGHT)


def distil(model: keras.Model, teachers: list[keras.Model], weight: float, temperature: float, some_images: bool = False) -> None:
    """From now on `model`'s training loss mixes in the teachers' soft targets; with `some_images`, only for the
    images whose labels are `tagged` (the others learn from their labels alone). Set on this model object only
    (its class and saved file stay a plain Sequential), past Keras's attribute tracking, so the teachers'
    weights are not the model's own: not trained, not saved, not counted."""
    labels_loss, labels_metrics = model.compute_loss, model.compute_metrics
    soft_loss = keras.losses.CategoricalCrossentropy(from_logits=True)  # "sum_over_batch_size", as the compiled loss

    def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        taught = None
        if some_images:
            y, taught = untagged(y)
        if not training:
            return labels_loss(x, y, y_pred, sample_weight, training=training)
        targets = ops.mean(ops.stack([ops.softmax(logits(teacher(x, training=False)) / temperature) for teacher in teachers]), axis=0)
        if taught is None:
            loss = labels_loss(x, y, y_pred, sample_weight, training=training)
            soft = soft_loss(targets, logits(y_pred) / temperature, sample_weight=sample_weight) * temperature**2
            return (1 - weight) * loss + weight * soft
        # Per image, as Lightning mixes it: (1 - w t) x the labels' loss + w t x the teachers', t = 1 if taught.
        share = weight * ops.cast(taught, y_pred.dtype)
        if sample_weight is not None:  # the padding's weights (lenet_keras.data.pad) weigh both parts
            share_weight, labels_weight = share * sample_weight, (1 - share) * sample_weight
        else:
            share_weight, labels_weight = share, 1 - share
        loss = labels_loss(x, y, y_pred, labels_weight, training=training)
        return loss + soft_loss(targets, logits(y_pred) / temperature, sample_weight=share_weight) * temperature**2

    def compute_metrics(x, y, y_pred, sample_weight=None):
        return labels_metrics(x, untagged(y)[0], y_pred, sample_weight)

    object.__setattr__(model, "compute_loss", compute_loss)
    if some_images:
        object.__setattr__(model, "compute_metrics", compute_metrics)
