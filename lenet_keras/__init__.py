"""LeNet-5 in Keras 3 (any backend: TensorFlow on CPU, JAX on a GPU machine without TensorFlow)."""
