"""Framework-neutral pieces of the LeNet-5 twins: spec, recipes, data, conversion, comparison, reports.

Nothing here imports torch or TensorFlow at module level.
"""
