"""Per-session seeds derived from the experiment seed.

Each session's random stream depends only on (experiment seed, session index), never on which process or in
which order it runs: that is what makes results bit-identical whatever the number of workers.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

SEED_RULE = (
    "session_seed = splitmix64(splitmix64(seed) XOR splitmix64(session_index + 1 + 0x9E3779B97F4A7C15)), "
    "the session's random stream is splitmix64 counting from session_seed"
)

# A uniform random Q initialisation draws from its own stream, so that the session's main stream (initial
# prices, exploration, ...) is the same whether or not a scenario uses it: entry k of the session's flat
# Q array (all firms' tables, concatenated) is uniform(splitmix64(q_init_seed + k * 0x9E3779B97F4A7C15)).
_Q_INIT_TAG = 0x51494E4954  # "QINIT"


def q_init_seed(session_seed: int) -> int:
    """The seed of a session's Q-initialisation stream."""
    return splitmix64(session_seed ^ _Q_INIT_TAG)


def splitmix64(x: int) -> int:
    """Sebastiano Vigna's splitmix64 finaliser: a bijective 64-bit mix with good avalanche."""
    z = (x + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def session_seed(seed: int, index: int) -> int:
    return splitmix64(splitmix64(seed) ^ splitmix64((index + 1 + _GOLDEN) & _MASK))


def session_seeds(seed: int, sessions: int) -> list[int]:
    """The seeds of sessions 0 .. sessions-1 of an experiment seeded with `seed`."""
    return [session_seed(seed, i) for i in range(sessions)]
