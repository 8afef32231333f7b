"""Encoders x -> features h for the VAE's q(z|x): token sequences (bi-GRU) or PyG graphs (GATv2)."""
