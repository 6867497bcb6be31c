"""The speed benchmarks scripts/bench.py runs: training speed per runner (`training.py`), reading speed end to end
(`inference.py`), data-parallel overhead (`devices.py`) and what they share (`common.py`). Imports no framework
package; the runners that train in-process (they import lenet_torch and lenet_keras, which of `parity` only
`parity/frameworks/` may) are in scripts/bench.py itself."""
