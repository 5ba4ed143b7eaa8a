"""The HTTP API of algocomp: a thin FastAPI layer over the library in shared/algocomp.

One folder per domain (scenarios, runs, results, streams, health), each with its routes, request and response
schemas and service functions side by side; `main.create_app()` wires them together.
"""
