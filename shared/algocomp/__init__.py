"""algocomp: simulate algorithmic pricing in oligopoly markets and measure its effect on competition."""

__version__ = "0.1.0"
