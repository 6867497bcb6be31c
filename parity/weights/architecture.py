"""A Keras model's architecture, read from its config dict alone: no Keras, no TensorFlow.

The dict is what `model.get_config()` returns, the config.json in a Keras 3 `.keras` zip, or the
`model_config` attribute of a legacy `.h5` (Keras 3 and tf.keras 2.x, the seed):

    with h5py.File(path) as f:
        infos = keras_layer_infos(json.loads(f.attrs["model_config"]))
    parity.spec.first_difference(infos)  # None, or e.g. "layer average_pooling2d: max pooling (MaxPooling2D), ..."

Same-shaped weights do not make the same model (max instead of average pooling, tanh instead of relu):
this description is what tells. Any well-formed dict gives a list; a layer it does not know, or
knows under options LeNet-5 never uses (channels_first, dilation, groups), is kind "other".
"""

from __future__ import annotations

from typing import Any

from parity.spec import LayerInfo

_KINDS = {"Conv2D": "conv", "AveragePooling2D": "avgpool", "MaxPooling2D": "maxpool", "Flatten": "flatten",
          "Dense": "dense"}
# Older Keras spellings of the same classes (tf.keras 2.x still deserializes them).
_ALIASES = {"Convolution2D": "Conv2D", "AvgPool2D": "AveragePooling2D", "MaxPool2D": "MaxPooling2D"}


def _layer_list(model_config: dict) -> list:
    """The layer entries of a model config, with or without the outer {"class_name", "config"} wrapper."""
    inner = model_config.get("config") if "layers" not in model_config else model_config
    layers = inner.get("layers") if isinstance(inner, dict) else None
    return layers if isinstance(layers, list) else []


def _square(value: Any, default: int) -> int | tuple[int, ...]:
    """kernel_size/pool_size/strides (an int, a list or None) as an int when all sides agree."""
    if value is None:
        return default
    sides = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return sides[0] if len(set(sides)) == 1 else sides


def _activation(value: Any) -> str | None:
    """"relu", or a serialized function/object dict ({"class_name": "function", "config": "myact"}), as a name."""
    if isinstance(value, dict):
        config = value.get("config")
        value = config if isinstance(config, str) else value.get("class_name")
    if value is None or value == "linear":
        return None
    return str(value)


def _class_name(entry: dict) -> str:
    """The layer class, as written; a custom class (registered under a package, or from a non-Keras module)
    keeps its registered name, so a user's subclass called "Conv2D" is not taken for Keras's."""
    name = str(entry.get("class_name", "?"))
    registered, module = entry.get("registered_name"), entry.get("module")
    if registered not in (None, name):
        return str(registered)
    if module is not None and module != "keras" and not str(module).startswith("keras."):
        return f"{module}.{name}"
    return _ALIASES.get(name, name)


def _unusual_options(config: dict) -> list[str]:
    """Options that change what a conv/pool/flatten computes without changing any weight's shape."""
    found = []
    if config.get("data_format") not in (None, "channels_last"):
        found.append(f"data_format={config['data_format']}")
    if _square(config.get("dilation_rate"), 1) != 1:
        found.append(f"dilation_rate={config['dilation_rate']}")
    if config.get("groups", 1) != 1:
        found.append(f"groups={config['groups']}")
    return found


def keras_layer_info(entry: dict) -> LayerInfo:
    """One entry of config["layers"] ({"class_name": ..., "config": {...}}) as a LayerInfo."""
    class_name = _class_name(entry)
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = str(config.get("name", entry.get("name", "")))
    kind = _KINDS.get(class_name, "other")
    if unusual := _unusual_options(config):
        kind, class_name = "other", f"{class_name}({', '.join(unusual)})"
    activation = _activation(config.get("activation"))
    if kind == "conv":
        return LayerInfo(name, kind, units=config.get("filters", 0), kernel=_square(config.get("kernel_size"), 0),
                         stride=_square(config.get("strides"), 1), padding=str(config.get("padding", "valid")),
                         activation=activation, class_name=class_name)
    if kind in ("avgpool", "maxpool"):
        kernel = _square(config.get("pool_size"), 2)
        return LayerInfo(name, kind, kernel=kernel, stride=_square(config.get("strides"), kernel),
                         padding=str(config.get("padding", "valid")), class_name=class_name)
    if kind == "dense":
        return LayerInfo(name, kind, units=config.get("units", 0), activation=activation, class_name=class_name)
    return LayerInfo(name, kind, activation=activation, class_name=class_name)


def keras_layer_infos(model_config: dict) -> list[LayerInfo]:
    """Every layer of a Keras model config but its InputLayer, in order: compare with parity.spec.first_difference."""
    return [keras_layer_info(entry) for entry in _layer_list(model_config)
            if isinstance(entry, dict) and entry.get("class_name") != "InputLayer"]
