"""The columns every firm has in the engine's int and float parameter matrices, whatever its agent kind.

These describe how a firm's table is laid out and how its exploration rate evolves; each has one meaning for every
kind. A kind's own parameters (a learning rate, a fixed price, UCB's c, ...) get columns of their own after these,
one per named parameter, allocated by the registry (agents.registry); no column is shared by two meanings.
"""

from __future__ import annotations

# Int columns. I_KIND: the kind's code (agents.registry); I_STATES: states in the firm's table; I_QOFF, I_SOFF:
# offsets of its table and of its per-state caches; I_BASE, I_MEMORY, I_MODK1: the state is the last I_MEMORY
# profiles in base I_BASE (I_MODK1 = base ** (memory - 1)); I_TIE: 1 if ties among maximal values are broken at
# random (tie_break); I_RIVALS: 1 if the state is the rivals' current prices instead (Klein's learners).
I_KIND, I_STATES, I_QOFF, I_SOFF, I_BASE, I_MODK1, I_MEMORY, I_TIE, I_RIVALS = range(9)
N_COMMON_INT = 9

# Float columns. F_DELTA: the discount factor (0 for agents that do not discount); F_BETA: the exploration rate's
# decay; F_DECAY: exp(-beta), its per-period factor; F_POWER: the polynomial schedule's exponent (0: exponential
# schedule); F_EXPLORE0: the exploration rate (or temperature) at period 0; F_SCHEDULE_START: eps_0 of the
# polynomial schedule eps_0 (1 + beta t)^(-power); F_QLOW, F_QHIGH: bounds of a uniform random initial table
# (both 0: none; drawn per session by engine.session).
F_DELTA, F_BETA, F_DECAY, F_POWER, F_EXPLORE0, F_SCHEDULE_START, F_QLOW, F_QHIGH = range(8)
N_COMMON_FLOAT = 8
