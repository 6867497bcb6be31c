"""Training runs the same way in both frameworks: the metrics.json schema, a recipe's stages, reports and plots."""
