"""Data: the dataset catalog, SMILES file readers and the Lightning DataModule."""
