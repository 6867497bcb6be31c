"""Loading torch and TensorFlow/Keras into one process safely.

Creating a torch optimizer after TensorFlow is loaded aborts the process here with
"LLVM ERROR: inconsistency in registered CommandLine options": torch pulls in triton's LLVM lazily
(through torch._dynamo) and it clashes with the LLVM TensorFlow already registered. Loading
torch._dynamo first avoids it. Single-framework runs never call this and never load the other one.
"""

from __future__ import annotations

import os


def load_both():
    """Import torch (with _dynamo) and then Keras; returns (torch, keras)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import torch
    import torch._dynamo  # noqa: F401  -- must precede TensorFlow, see above

    import keras

    return torch, keras
