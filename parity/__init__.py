"""Framework-neutral pieces of the LeNet-5 twins.

Ground floor: `spec` (the architecture, the oracle both builds are checked against), `config` (recipes),
`cli`, `files`. Sub-packages by concern: `data`, `weights`, `codes`, `runs`; `frameworks` is the only
part that imports `lenet_torch` or `lenet_keras`. Nothing here imports torch or TensorFlow at module level.
"""
