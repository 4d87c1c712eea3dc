"""Evaluation metrics: feature networks, distances between image sets, detectors, collapse checks."""
