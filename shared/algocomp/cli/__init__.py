"""The `algocomp` command-line tool (entry point algocomp.cli.main:main).

main is not imported here on purpose: `python -m algocomp.cli.main` would otherwise find the module already
imported by its package and warn about it.
"""
