"""Are the two builds the same model? Output and layer-by-layer comparisons of torch vs Keras.

Needs both frameworks in one process (see parity.frameworks.both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.weights.convert import nhwc_to_nchw
from parity.frameworks.both import load_both
from parity.spec import Weights


@dataclass
class OutputDiff:
    max_abs_diff: float
    argmax_agreement: float  # fraction of images whose predicted class is the same
    images: int


def compare_outputs(a: np.ndarray, b: np.ndarray) -> OutputDiff:
    return OutputDiff(
        max_abs_diff=float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))),
        argmax_agreement=float(np.mean(a.argmax(1) == b.argmax(1))),
        images=len(a),
    )


def probabilities_both(weights: Weights, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs of the same weights run in torch and in Keras, on (N, 32, 32) images."""
    load_both()
    from lenet_keras.checkpoint import set_weights
    from lenet_keras.model import build_lenet5
    from lenet_keras.model import predict_probabilities as keras_predict
    from lenet_torch.checkpoint import model_from_weights
    from lenet_torch.model import predict_probabilities as torch_predict

    torch_out = torch_predict(model_from_weights(weights), images)
    keras_out = keras_predict(set_weights(build_lenet5(), weights), images)
    return torch_out, keras_out


def layer_diffs(weights: Weights, images: np.ndarray) -> dict[str, float]:
    """Max abs difference of every layer's output (Keras's NHWC brought to NCHW), so a failure names the layer."""
    torch, _ = load_both()
    from lenet_keras.checkpoint import set_weights
    from lenet_keras.model import build_lenet5, layer_outputs_model
    from lenet_torch.checkpoint import model_from_weights

    with torch.no_grad():
        torch_layers = model_from_weights(weights).layer_outputs(torch.from_numpy(images[:, None]))
    keras_layers = layer_outputs_model(set_weights(build_lenet5(), weights)).predict(images[..., None], verbose=0)
    diffs = {}
    for name, torch_out in torch_layers.items():
        keras_out = nhwc_to_nchw(np.asarray(keras_layers[name]))
        if name == "flatten":  # the two flatten orders differ by design; compare the same values in torch's order
            keras_out = nhwc_to_nchw(np.asarray(keras_layers["average_pooling2d_1"])).reshape(len(images), -1)
        diffs[name] = float(np.max(np.abs(torch_out.numpy().astype(np.float64) - keras_out)))
    return diffs
