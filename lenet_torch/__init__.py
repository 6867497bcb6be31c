"""LeNet-5 in PyTorch: a plain nn.Module (model.py) and a LightningModule (module.py)."""
