"""Encoder-based image metrics: encoders, feature extraction and metric functions."""
