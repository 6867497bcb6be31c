"""Which process of a data-parallel run this is, told by the launcher's environment before any framework starts.

Only rank 0 writes the run folder (config.json, metrics.json, checkpoints, the model, logs): the other ranks
train the same model on their part of each batch and write nothing. The launchers say who is who:
- Lightning's own launcher (`--devices N` on one machine) re-runs the command for ranks 1..N-1 with
  LOCAL_RANK (and NODE_RANK) set, and sets LOCAL_RANK=0 in the first process once it has started them;
- torchrun sets RANK, LOCAL_RANK and WORLD_SIZE in every process; SLURM's srun sets SLURM_PROCID;
- Keras multi-worker runs: TF_CONFIG's task index (TensorFlow), JAX_PROCESS_ID (JAX).
A process is rank 0 when every one of these that is set says 0.
"""

from __future__ import annotations

import json
import os

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JAX_PROCESS_ID")


def process_rank() -> int:
    """0 for the process that writes the run; a positive number (not necessarily the global rank) for the others."""
    ranks = [int(os.environ[name]) for name in RANK_VARIABLES if os.environ.get(name, "").isdigit()]
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            task = json.loads(tf_config).get("task", {})
            ranks.append(int(task.get("index", 0)))
        except (ValueError, AttributeError, TypeError):
            pass  # TensorFlow itself refuses a malformed TF_CONFIG, with its own message
    return max(ranks, default=0)


def is_rank_zero() -> bool:
    return process_rank() == 0
