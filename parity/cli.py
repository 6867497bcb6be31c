"""Bits every CLI in scripts/ shares: one-line errors, framework set-up before its import."""

from __future__ import annotations

import argparse
import os
import sys


class ArgumentParser(argparse.ArgumentParser):
    """Bad flags -> one clear line on stderr and exit code 2 (argparse's usage block stays in --help)."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def fail(message: str, code: int = 1):
    sys.stderr.write(f"error: {message}\n")
    sys.exit(code)


def quiet_frameworks() -> None:
    """Keep TensorFlow's C++ start-up chatter out of the output; set before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def select_accelerator(framework: str, accelerator: str) -> None:
    """Keras's backends pick their device at import time, so hide the GPU before the import for --accelerator cpu."""
    if framework == "keras" and accelerator == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        os.environ["JAX_PLATFORMS"] = "cpu"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value
