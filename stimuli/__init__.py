"""Stimulus sets: import, normalise and inspect image folders; the demo set."""
