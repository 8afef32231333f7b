"""Reusable network parts (transformer backbone shared by the autoregressive and diffusion models)."""
