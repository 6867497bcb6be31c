"""The one part of `parity` that touches lenet_torch and lenet_keras: both in one process, model files in either, equivalence checks, the predictor."""
