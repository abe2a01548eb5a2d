"""Data: media decoding, benchmark loaders (:mod:`pave.data.datasets`) and synthetic data."""
