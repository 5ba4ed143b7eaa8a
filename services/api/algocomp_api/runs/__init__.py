"""Runs: create (commit as queued, then enqueue), list, read and cancel."""
