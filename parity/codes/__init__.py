"""Verification codes and digits from outside MNIST: seeded generation, segmentation and reading, font digits, the any-image normaliser."""
