"""Sweeps: a grid of runs of one base scenario, created in one transaction, followed and cancelled as one."""
