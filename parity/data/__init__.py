"""MNIST and everything between its IDX bytes and a batch: reading, fetching, preprocessing, splits, batch order, augmentation."""
