"""One session: allocate its state, run the learning phase in chunks, then read off its converged strategies.

A session's memory is bounded whatever its horizon: the agents' tables, a fixed number of panel rows (which
merge pairwise when full), and a ring buffer for the tail. After learning, copies of the state are played
greedily with learning frozen: once to find the limit cycle, and twice more from the same point on it, with and
without a forced one-period deviation, for the impulse response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from algocomp.agents import registry
from algocomp.agents.catalog import (
    F_EXPLORE0,
    F_QHIGH,
    F_QLOW,
    I_BASE,
    I_KIND,
    I_MEMORY,
    I_QOFF,
    I_RIVALS,
    I_SOFF,
    I_STATES,
    I_TIE,
)
from algocomp.engine import kernel as K
from algocomp.engine import specialised
from algocomp.engine.build import QLEARNING_ALPHA, CompiledScenario
from algocomp.engine.deviations import DeviationCheck, applies, check_cycle
from algocomp.engine.primitives import Tables
from algocomp.engine.results import PANEL_COLUMNS, SessionResult
from algocomp.engine.seeds import q_init_seed, splitmix64

# Learning runs in chunks of this many periods between checks for cancellation and progress.
DEFAULT_CHUNK = 1 << 21
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


@dataclass
class SessionState:
    """Every mutable array of one session."""

    Q: np.ndarray
    N: np.ndarray
    S2: np.ndarray  # per price, the sum of squared rewards (UCB-tuned; empty when no firm uses it)
    V: np.ndarray
    U2: np.ndarray  # per state, an upper bound on the best non-greedy value (Q-learning loop only)
    G: np.ndarray
    eps: np.ndarray
    act: np.ndarray
    state: np.ndarray
    last_change: np.ndarray
    flags: np.ndarray
    seq_acc: np.ndarray
    seq_disc: np.ndarray
    prev_state: np.ndarray
    prev_act: np.ndarray
    rng: np.ndarray
    clock: np.ndarray
    scratch: np.ndarray
    log_f: np.ndarray
    log_i: np.ndarray
    acc_f: np.ndarray
    tail_a: np.ndarray
    tail_q: np.ndarray
    tail_pi: np.ndarray
    visits: np.ndarray  # per price profile visit counts of the open interval (Q-learning loop only)
    history: np.ndarray  # (depth, n) the random initial price profiles, newest first (the Python path's start)

    def copy(self) -> SessionState:
        return SessionState(**{name: getattr(self, name).copy() for name in _STATE_FIELDS})

    def record(self) -> Tables:
        """The arrays as the compiled loops take them (one record; the arrays are shared, not copied; history
        serves only engine.python_session)."""
        return Tables(**{name: getattr(self, name) for name in _TABLE_FIELDS})

    @property
    def period(self) -> int:
        return int(self.clock[K.C_T])

    @property
    def converged_at(self) -> int:
        return int(self.clock[K.C_CONVERGED_AT])


# The field names, once: the analysis copies and records a session hundreds of times, and dataclasses.fields()
# on each call was a fifth of its time.
_STATE_FIELDS = tuple(f.name for f in fields(SessionState))
_TABLE_FIELDS = tuple(name for name in _STATE_FIELDS if name != "history")


class _Stream:
    """The session's splitmix64 stream on the Python side (initial prices), continued by the kernel."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def below(self, k: int) -> int:
        # Same draw as kernel._below after `rs += golden`: splitmix64(x) is mix(x + golden).
        r = splitmix64(self.state)
        self.state = (self.state + _GOLDEN) & _MASK
        return ((r >> 32) * k) >> 32


def stream_units(seed: int, start: int, count: int) -> np.ndarray:
    """Uniforms in [0, 1) from the top 53 bits of splitmix64(seed + k * golden), k = start .. start + count - 1:
    a counter-based stream, so any slice of it is drawn without the entries before."""
    with np.errstate(over="ignore"):
        k = np.arange(start, start + count, dtype=np.uint64)
        z = np.uint64(seed) + (k + np.uint64(1)) * np.uint64(_GOLDEN)  # splitmix64(x) = mix(x + golden)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _draw_uniform_q(cs: CompiledScenario, Q: np.ndarray, seed: int) -> None:
    """Fill the tables of firms with q_init {uniform: [low, high]} from the session's Q-initialisation stream
    (engine.seeds.q_init_seed); forbidden prices keep -inf."""
    qseed = None
    for i in range(cs.n_firms):
        low, high = float(cs.fpar[i, F_QLOW]), float(cs.fpar[i, F_QHIGH])
        if not high > low:
            continue
        if qseed is None:
            qseed = q_init_seed(seed)
        qo, size = int(cs.ipar[i, I_QOFF]), int(cs.ipar[i, I_STATES]) * cs.n_prices
        block = Q[qo : qo + size]
        allowed = np.isfinite(block)
        block[allowed] = (low + (high - low) * stream_units(qseed, qo, size))[allowed]


def _greedy_ties_at_random(cs: CompiledScenario, stream: _Stream, Q: np.ndarray, G: np.ndarray) -> None:
    """For firms with tie_break random, the initial greedy price of every state whose largest value several
    allowed prices share (a constant Q, say) is drawn uniformly among them from the session's stream, state by
    state in order; rows without ties draw nothing."""
    m = cs.n_prices
    for i in range(cs.n_firms):
        if not cs.ipar[i, I_TIE]:
            continue
        states, qo, so = (int(cs.ipar[i, c]) for c in (I_STATES, I_QOFF, I_SOFF))
        order = cs.allowed[i, : int(cs.n_allowed[i])]  # the kernel's scan order
        rows = Q[qo : qo + states * m].reshape(states, m)[:, order]
        tied = rows == rows.max(axis=1, keepdims=True)
        for s in np.flatnonzero(tied.sum(axis=1) > 1):
            candidates = order[tied[s]]
            G[so + s] = candidates[stream.below(len(candidates))]


def new_state(cs: CompiledScenario, seed: int) -> SessionState:
    """A session's state before its first period: the initial tables (uniform random ones drawn from the
    session's Q-initialisation stream), each state's greedy price and value, and random initial prices from the
    session's stream, followed on that stream by the draws of any random tie-breaking among initial greedy
    prices; the kernel continues the stream from there."""
    n, m = cs.n_firms, cs.n_prices
    scenario = cs.scenario
    stream = _Stream(seed)
    Q = cs.q_init.copy()
    _draw_uniform_q(cs, Q, seed)
    V = np.zeros(cs.s_size)
    U2 = np.zeros(cs.s_size)
    G = np.zeros(cs.s_size, dtype=np.int64)
    eps = np.zeros(n)
    for i in range(n):
        kind = registry.kind_by_code(int(cs.ipar[i, I_KIND]))
        states, qo, so = (int(cs.ipar[i, c]) for c in (I_STATES, I_QOFF, I_SOFF))
        rows = Q[qo : qo + states * m].reshape(states, m)
        G[so : so + states] = np.argmax(rows, axis=1)  # first maximum, forbidden prices hold -inf
        V[so : so + states] = rows.max(axis=1) if kind.values_from_table else 0.0
        if m > 1:
            U2[so : so + states] = np.sort(rows, axis=1)[:, -2]
        eps[i] = cs.fpar[i, F_EXPLORE0]

    # A random initial state: `memory` random price profiles among the allowed prices (Calvano et al.).
    depth = max(1, int(cs.ipar[:, I_MEMORY].max()))
    history = np.array(
        [[cs.allowed[i, stream.below(int(cs.n_allowed[i]))] for i in range(n)] for _ in range(depth)], dtype=np.int64
    )  # history[0] is the most recent profile
    _greedy_ties_at_random(cs, stream, Q, G)
    act = history[0].copy()
    state = np.zeros(n, dtype=np.int64)
    for i in range(n):
        memory, base = int(cs.ipar[i, I_MEMORY]), int(cs.ipar[i, I_BASE])
        if cs.ipar[i, I_RIVALS]:
            state[i] = sum(int(act[k]) * m ** (k - (k > i)) for k in range(n) if k != i)
        else:
            s = 0
            for lag in range(memory):
                digit = int(history[lag] @ cs.powers) if base != m else int(history[lag, i])
                s += digit * base**lag
            state[i] = s

    lg = scenario.logging
    clock = np.zeros(K.N_CLOCK, dtype=np.int64)
    clock[K.C_CONVERGED_AT] = -1
    clock[K.C_INTERVAL] = lg.interval
    n_fields = 3 * n + 1
    return SessionState(
        Q=Q,
        N=np.zeros(cs.q_size),
        S2=np.zeros(cs.q_size if any(registry.kind_by_code(int(k)).square_sums for k in cs.ipar[:, I_KIND]) else 0),
        V=V,
        U2=U2,
        G=G,
        eps=eps,
        act=act,
        state=state,
        last_change=np.full(n, -cs.reprice_every, dtype=np.int64),
        flags=np.zeros(n, dtype=np.int64),
        seq_acc=np.zeros(n),
        seq_disc=np.ones(n),
        prev_state=np.zeros(n, dtype=np.int64),
        prev_act=np.full(n, -1, dtype=np.int64),
        rng=np.array([stream.state], dtype=np.uint64),
        clock=clock,
        scratch=np.zeros((n, m)),
        log_f=np.zeros((lg.max_intervals, n_fields)),
        log_i=np.zeros((lg.max_intervals, 2), dtype=np.int64),
        acc_f=np.zeros(n_fields),
        tail_a=np.zeros((lg.tail, n), dtype=np.int64),
        tail_q=np.zeros((lg.tail, n)),
        tail_pi=np.zeros((lg.tail, n)),
        visits=np.zeros(cs.n_profiles if _count_visits(cs) else 0, dtype=np.int64),
        history=history,
    )


def _count_visits(cs: CompiledScenario) -> bool:
    """Counting profile visits beats summing outcomes each period when an interval is long enough to amortise
    reading every profile once when it closes."""
    return cs.qlearning_only and cs.n_profiles * (3 * cs.n_firms + 1) <= cs.scenario.logging.interval


_NO_RECORD = np.zeros((0, 1), dtype=np.int64)


def advance(
    cs: CompiledScenario,
    st: SessionState,
    periods: int,
    *,
    learn: bool = True,
    record: np.ndarray | None = None,
    force_step: int = -1,
    force_firm: int = 0,
    general: bool = False,
    log: bool = True,
    reference: bool = False,
) -> int:
    """Run the kernel on this session for up to `periods` periods; returns how many it ran.

    Populations of plain Q-learners take the specialised loops (learning and frozen) unless general=True
    (tests use it to hold them to the general loop's results). Their learning loop is kernel.run_qlearning
    written out for the population's shape (engine.specialised), or kernel.run_qlearning itself with
    reference=True (tests hold the two together). log=False skips the panel and tail there (benchmarks use it
    to measure what logging costs)."""
    h = cs.scenario.horizon
    mk, tables = cs.market, st.record()
    if cs.qlearning_only and not general:
        # the records cross into compiled code as plain tuples, which numba types far faster than named ones
        fast_mk, fast_tables = tuple(mk), tuple(tables)
        if not learn:
            return int(K.play_qlearning(fast_mk, fast_tables, record, periods, force_step, force_firm))
        if reference:
            return int(
                K.run_qlearning(
                    fast_mk, fast_tables, QLEARNING_ALPHA, periods, h.convergence_periods, h.stop_at_convergence, log
                )
            )
        # kernel.run_qlearning written out for this population's shape (engine.specialised), bit-identical to it
        shape = specialised.shape_of(cs.ipar, cs.n_prices, mk.allowed, mk.n_allowed)
        loop = specialised.module_for(shape).run_qlearning
        return int(
            loop(fast_mk, fast_tables, QLEARNING_ALPHA, periods, h.convergence_periods, h.stop_at_convergence, log)
        )
    return int(
        K.run_periods(
            mk,
            tables,
            periods,
            learn,
            h.convergence_periods,
            h.stop_at_convergence,
            record if record is not None else _NO_RECORD,
            force_step,
            force_firm,
        )
    )


def learn(
    cs: CompiledScenario,
    st: SessionState,
    *,
    chunk: int = DEFAULT_CHUNK,
    should_stop: Callable[[], bool] | None = None,
    on_chunk: Callable[[SessionState], None] | None = None,
) -> bool:
    """The learning phase, until convergence (if the scenario stops there) or the horizon.

    Returns False if should_stop() asked to stop between chunks.
    """
    h = cs.scenario.horizon
    while st.period < h.max_periods:
        advance(cs, st, min(chunk, h.max_periods - st.period))
        if on_chunk is not None:
            on_chunk(st)
        if h.stop_at_convergence and st.converged_at >= 0:
            break
        if should_stop is not None and should_stop():
            return False
    return True


def play_greedy(
    cs: CompiledScenario, st: SessionState, periods: int, *, deviate_firm: int = -1, general: bool = False
) -> np.ndarray:
    """Play the frozen greedy strategies from a copy of `st` (which `st` itself is advanced to the end of);
    with deviate_firm >= 0 that firm plays its static best response in the first period. Returns the actions."""
    record = np.zeros((periods, cs.n_firms), dtype=np.int64)
    advance(
        cs,
        st,
        periods,
        learn=False,
        record=record,
        force_step=0 if deviate_firm >= 0 else -1,
        force_firm=max(deviate_firm, 0),
        general=general,
    )
    return record


def find_cycle(actions: np.ndarray) -> int:
    """Length of the cycle the end of a deterministic path has settled into, or 0 if none shows.

    The second half of the path must repeat with period P (the shortest such P is returned); as the dynamics
    depend only on recent prices, a path that repeats for longer than P plus the memory has reached a cycle.
    """
    length = actions.shape[0]
    half = length // 2
    tail = actions[half:]
    for period in range(1, half // 2 + 1):
        if np.array_equal(tail[period:], tail[:-period]):
            return period
    return 0


def limit_cycle(path: np.ndarray) -> tuple[np.ndarray, int]:
    """(the profiles of the cycle the greedy path settled into, its length); when no cycle shows (length 0), the
    second half of the path stands in for it."""
    length = find_cycle(path)
    return (path[-length:] if length else path[path.shape[0] // 2 :]), length


def _state_key(st: SessionState) -> tuple[int, ...]:
    """Every firm's state: with the strategies frozen, what the next profile depends on."""
    return tuple(int(x) for x in st.state)


class Shock(NamedTuple):
    """One of Calvano et al.'s one-period deviations from a state of the limit cycle."""

    length: int  # periods until the state is back in the pre-deviation cycle, the deviation period counted
    returned: bool  # back in the pre-deviation cycle (not settled into another one)
    rival_relative_change: float  # the other firms' mean relative price change from the deviation period to the next


def cycle_starts(cs: CompiledScenario, on_cycle, cycle_length: int, *, play: Callable = play_greedy) -> list:
    """Copies of the session at each state of the limit cycle, in order, starting from `on_cycle` (not changed).

    `play` plays a frozen session on (play_greedy; engine.python_session passes its own for Python agents)."""
    walker = on_cycle.copy()
    starts = []
    for _ in range(max(cycle_length, 0)):
        starts.append(walker.copy())
        play(cs, walker, 1)
    return starts


def shock_lengths(cs: CompiledScenario, starts: list, *, play: Callable = play_greedy) -> list[Shock]:
    """Calvano et al.'s punishment length and impulse response: from every state of the limit cycle, every firm
    in turn deviates for one period to its static best response and all play greedily after; the shock lasts
    until the state is back in the pre-deviation cycle (the deviation period counts as one). A path that settles
    into another cycle first ends its shock where that cycle starts. The rivals' response is their relative
    price change from the deviation period to the next, as in the paper's Table A11 ("IR").

    `starts` are the session at each state of the cycle (cycle_starts; not changed); simultaneous moves only
    (empty otherwise). `play` as in cycle_starts; a frozen session's `state` is what the next profile depends on.
    """
    if cs.sequential or not starts:
        return []
    horizon = cs.scenario.logging.cycle_search
    cycle_states = {_state_key(start) for start in starts}
    firms = np.arange(cs.n_firms)
    out: list[Shock] = []
    for start in starts:
        for firm in range(cs.n_firms):
            path = start.copy()
            play(cs, path, 1, deviate_firm=firm)
            rivals = firms[firms != firm]
            at_deviation = cs.grid[rivals, path.act[rivals]]
            after = play(cs, path.copy(), 1)[0]
            with np.errstate(divide="ignore", invalid="ignore"):
                change = np.where(at_deviation > 0, cs.grid[rivals, after[rivals]] / at_deviation - 1.0, np.nan)
            response = float(np.mean(change)) if np.isfinite(change).all() else float("nan")
            seen: dict[tuple[int, ...], int] = {}
            for period in range(1, horizon + 1):
                key = _state_key(path)
                if key in cycle_states:
                    out.append(Shock(period, True, response))
                    break
                if key in seen:
                    out.append(Shock(seen[key], False, response))
                    break
                seen[key] = period
                play(cs, path, 1)
            else:
                out.append(Shock(horizon, False, response))
    return out


def deviation_check(cs: CompiledScenario, starts: list[SessionState]) -> DeviationCheck | None:
    """Calvano et al.'s equilibrium and incentive checks on the limit cycle (engine.deviations), from the session
    at each state of the cycle (cycle_starts)."""
    if not starts or not applies(cs):
        return None
    return check_cycle(cs, starts[0].G, np.array([s.state for s in starts], dtype=np.int64))


# ------------------------------------------------------------------------------------------- panel rows


def _expand(
    session: int,
    kind: str,
    period: np.ndarray,
    periods: np.ndarray,
    price: np.ndarray,
    quantity: np.ndarray,
    profit: np.ndarray,
    cs_value: np.ndarray,
    costs: np.ndarray,
) -> dict:
    """Rows x firms arrays to the long panel's columns (one row per logged row and firm)."""
    rows, n = price.shape
    welfare = cs_value + profit.sum(axis=1)
    return {
        "session": np.full(rows * n, session, dtype=np.int32),
        "kind": np.full(rows * n, kind, dtype=object),
        "period": np.repeat(period, n).astype(np.int64),
        "periods": np.repeat(periods, n).astype(np.int64),
        "firm": np.tile(np.arange(n, dtype=np.int16), rows),
        "price": price.reshape(-1),
        "cost": np.tile(costs, rows),
        "quantity": quantity.reshape(-1),
        "profit": profit.reshape(-1),
        "consumer_surplus": np.repeat(cs_value, n),
        "total_welfare": np.repeat(welfare, n),
    }


def interval_means(cs: CompiledScenario, st: SessionState) -> tuple[np.ndarray, np.ndarray]:
    """The logged intervals, the last (partial) one included: (period_end_and_count (rows, 2), means)."""
    rows = int(st.clock[K.C_LOG_ROWS])
    log_f = st.log_f[:rows]
    log_i = st.log_i[:rows]
    pending = int(st.clock[K.C_ACC_COUNT])
    if pending > 0:
        log_f = np.vstack([log_f, st.acc_f[None, :]])
        log_i = np.vstack([log_i, [[st.period - 1, pending]]])
    return log_i, log_f / np.maximum(log_i[:, 1:2].astype(float), 1.0)


def tail_outcomes(cs: CompiledScenario, st: SessionState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last learning periods the tail holds, oldest first: (price indices, quantities, profits), each
    (periods, n)."""
    tail_len = cs.scenario.logging.tail
    kept = min(tail_len, st.period)
    slots = np.arange(st.period - kept, st.period) % max(tail_len, 1)
    acts = st.tail_a[slots]
    if cs.qlearning_only:  # the specialised loop keeps only the prices; outcomes are table entries
        joint = acts @ cs.powers
        return acts, cs.quantity[joint], cs.profit[joint]
    return acts, st.tail_q[slots], st.tail_pi[slots]


def panel_columns(
    cs: CompiledScenario, st: SessionState, session: int, intervals: tuple[np.ndarray, np.ndarray]
) -> dict[str, np.ndarray]:
    """The session's interval means and its tail, period by period, as panel columns."""
    n = cs.n_firms
    log_i, means = intervals
    parts = [
        _expand(
            session,
            "interval",
            log_i[:, 0] + 1,
            log_i[:, 1],
            means[:, :n],
            means[:, n : 2 * n],
            means[:, 2 * n : 3 * n],
            means[:, 3 * n],
            cs.costs,
        )
    ]
    acts, tail_q, tail_pi = tail_outcomes(cs, st)
    kept = acts.shape[0]
    if kept > 0:
        start = st.period - kept
        joint = acts @ cs.powers
        parts.append(
            _expand(
                session,
                "tail",
                np.arange(start, st.period) + 1,
                np.ones(kept, dtype=np.int64),
                cs.grid[np.arange(n)[None, :], acts],
                tail_q,
                tail_pi,
                cs.consumer_surplus[joint],
                cs.costs,
            )
        )
    return {c: np.concatenate([p[c] for p in parts]) for c in PANEL_COLUMNS}


# ------------------------------------------------------------------------------------------- session


def run_session(
    cs: CompiledScenario,
    session: int,
    seed: int,
    *,
    chunk: int = DEFAULT_CHUNK,
    should_stop: Callable[[], bool] | None = None,
) -> SessionResult | None:
    """Simulate one session end to end; None if should_stop() interrupted it."""
    from algocomp.metrics.session import (
        session_metrics,  # metrics import the engine's results, not vice versa
    )

    st = new_state(cs, seed)
    if not learn(cs, st, chunk=chunk, should_stop=should_stop):
        return None
    intervals = interval_means(cs, st)

    lg = cs.scenario.logging
    frozen = st.copy()
    path = play_greedy(cs, frozen, lg.cycle_search)
    cycle, cycle_length = limit_cycle(path)

    # Impulse response from the point reached on the cycle. With alternating moves the deviation must fall on
    # the deviating firm's turn, so play on until it is.
    if cs.sequential:
        while frozen.period % cs.n_firms != lg.deviating_firm:
            play_greedy(cs, frozen, 1)
    before = frozen.act.copy()
    counterfactual = np.vstack([before[None, :], play_greedy(cs, frozen.copy(), lg.impulse_periods + 1)])
    deviation = np.vstack(
        [before[None, :], play_greedy(cs, frozen.copy(), lg.impulse_periods + 1, deviate_firm=lg.deviating_firm)]
    )
    # the cycle's states, walked once for both of Calvano et al.'s analyses (simultaneous moves only)
    starts = [] if cs.sequential else cycle_starts(cs, frozen, cycle_length)
    metrics = session_metrics(
        cs,
        session=session,
        seed=seed,
        periods=st.period,
        converged_at=st.converged_at,
        cycle=cycle,
        cycle_length=cycle_length,
        path=path,
        interval_prices=intervals[1][:, : cs.n_firms],
        deviation=deviation,
        counterfactual=counterfactual,
        shocks=shock_lengths(cs, starts),
        check=deviation_check(cs, starts),
        tail_profit=tail_outcomes(cs, st)[2],
    )
    return SessionResult(
        session=session,
        seed=seed,
        panel_columns=panel_columns(cs, st, session, intervals),
        impulse_columns=_impulse_columns(cs, session, deviation, counterfactual),
        metrics=metrics,
    )


def _impulse_columns(
    cs: CompiledScenario, session: int, deviation: np.ndarray, counterfactual: np.ndarray
) -> dict[str, np.ndarray]:
    """Rows tau = -1 (before), 0 (the deviation), 1, ... of both paths, as impulse-table columns."""
    n = cs.n_firms
    firms = np.arange(n)
    net = cs.profit - cs.expected_fine
    steps = deviation.shape[0]
    price = cs.grid[firms[None, :], deviation]
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(price[0] > 0, price / price[0], np.nan)  # to tau = -1, as Calvano et al. plot it
    return {
        "session": np.full(steps * n, session, dtype=np.int32),
        "firm": np.tile(firms.astype(np.int16), steps),
        "tau": np.repeat(np.arange(-1, steps - 1), n).astype(np.int64),
        "price": price.reshape(-1),
        "relative_price": relative.reshape(-1),
        "profit": net[deviation @ cs.powers].reshape(-1),
        "counterfactual_price": cs.grid[firms[None, :], counterfactual].reshape(-1),
        "counterfactual_profit": net[counterfactual @ cs.powers].reshape(-1),
    }
