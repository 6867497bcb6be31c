"""LeNet-5 weights as raw NumPy arrays: the Keras <-> torch table, reading model files, initial weights. Imports no framework package."""
