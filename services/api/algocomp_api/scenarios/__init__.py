"""Scenarios: validate with the engine's scenario model, store once per fingerprint, list and fetch."""
