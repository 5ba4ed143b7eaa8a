"""Streams: a run's progress as Server-Sent Events, replayed from its Redis stream and resumable."""
