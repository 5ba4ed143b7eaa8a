"""One session on the Python policy path: the session loop of engine.kernel.run_periods, period by period in
Python, for populations with at least one agent the kernel cannot run (engine.policy's protocol).

Everything around the loop is engine.session's: the initial state (new_state: tables, random initial prices, the
session's stream), the panel accumulators and their merging (primitives._flush_interval, kernel._add_visits), the
noise and audit draws and realised profits (primitives._normal, _symmetric_unit, _realised), the static best response
of the forced deviation, the limit cycle, Calvano et al.'s shocks (session.cycle_starts and shock_lengths, given
this module's frozen play), the deviation checks (deviations.check_cycle on the tabulated frozen strategies), the
metrics and the output columns. So regulation (allowed prices, repricing limits, audits, noise), logging,
convergence, impulse responses and outputs are the same on both paths.

Compiled kinds run inside this loop through adapters that do what the kernel does with the same state arrays
and the same draws from the session's stream: a Calvano Q-learner (asynchronous updates) on this path gives
exactly the compiled path's results on the same seeds (tests/test_python_path.py holds it), and it can face a
Python agent. Adapted kinds: qlearning (asynchronous), fixed, nash, monopoly, myopic, epsilon_greedy, ucb1,
ucb_tuned and thompson (tests/test_python_path.py holds each to the kernel's general loop). Simultaneous moves
only. The adapters read each kind's named parameters from its registered columns (agents.catalog.kind_param: a
Q-learner's alpha, a fixed price, UCB's c, Thompson's prior, the bandits' reward scale) and the columns every firm
has (agents.layout); a firm runs here as an adapter when its kind is compiled, else its kind's `policy` builds
its agent (agents.registry, agents.python).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from algocomp.agents import qlearning, registry
from algocomp.agents.catalog import kind_param
from algocomp.agents.layout import (
    F_BETA,
    F_DECAY,
    F_DELTA,
    F_POWER,
    F_SCHEDULE_START,
    I_BASE,
    I_KIND,
    I_MEMORY,
    I_MODK1,
    I_QOFF,
    I_SOFF,
    I_TIE,
)
from algocomp.engine import kernel as K
from algocomp.engine import primitives as P
from algocomp.engine.build import NOISE_PROFIT_UNIFORM, CompiledScenario
from algocomp.engine.deviations import DeviationCheck, check_cycle
from algocomp.engine.policy import MarketFacts, Observation, PolicyAgent, SessionStream
from algocomp.engine.results import SessionResult
from algocomp.engine.session import (
    DEFAULT_CHUNK,
    SessionState,
    _impulse_columns,
    cycle_starts,
    interval_means,
    limit_cycle,
    new_state,
    panel_columns,
    shock_lengths,
    tail_outcomes,
)

# The frozen strategies are tabulated for Calvano et al.'s deviation checks when the histories they depend on
# number at most this many (a Python agent is asked for its price in each).
MAX_TABULATED_STATES = 1 << 14
# Learning polls should_stop this often (periods), so a Python-path session stops within about a second.
STOP_CHECK_PERIODS = 1024


def uses_python_path(cs: CompiledScenario) -> bool:
    """Whether any firm's agent is a Python-path agent, one whose registered kind is not compiled (so the session
    must run here)."""
    return any(not _kind(cs, i).compiled for i in range(cs.n_firms))


def _kind(cs: CompiledScenario, firm: int) -> registry.AgentKind:
    return registry.kind_by_code(int(cs.ipar[firm, I_KIND]))


def history_depth(cs: CompiledScenario) -> int:
    """Price profiles an observation holds: the longest memory of any firm (engine.session.new_state's depth)."""
    return max(1, int(cs.ipar[:, I_MEMORY].max()))


def check_python_path(cs: CompiledScenario) -> None:
    """Refuse, before anything runs, a population this path cannot run (agents.python.check_population)."""
    from algocomp.agents.python import check_population

    check_population(cs.scenario)


def market_facts(cs: CompiledScenario, spec=None) -> MarketFacts:
    b = cs.benchmarks
    return MarketFacts(
        n_firms=cs.n_firms,
        n_prices=cs.n_prices,
        grid=cs.grid,
        costs=cs.costs,
        allowed=tuple(cs.allowed[i, : int(cs.n_allowed[i])].copy() for i in range(cs.n_firms)),
        nash_price=np.asarray(b.nash_price, dtype=float),
        monopoly_price=np.asarray(b.monopoly_price, dtype=float),
        nash_profit=np.asarray(b.nash_profit, dtype=float),
        monopoly_profit=np.asarray(b.monopoly_profit, dtype=float),
        profit=cs.profit,
        powers=cs.powers,
        history=history_depth(cs),
        rivals_hidden=bool(cs.scenario.regulation.hide_rival_prices),
        spec=spec,
    )


# ------------------------------------------------------------------------------------------- adapters


class CompiledQLearning:
    """The kernel's asynchronous Q-learner (run_periods' QLEARNING branch) on the session's own table arrays: the
    same state encoding, exploration draws, update arithmetic, cached greedy prices and values, tie-breaking and
    exploration schedule, so it draws and computes exactly what the kernel would."""

    def __init__(self, cs: CompiledScenario, st: SessionState, firm: int) -> None:
        self.cs, self.st, self.i = cs, st, firm
        i = firm
        self.q_off, self.s_off = int(cs.ipar[i, I_QOFF]), int(cs.ipar[i, I_SOFF])
        self.memory, self.base = int(cs.ipar[i, I_MEMORY]), int(cs.ipar[i, I_BASE])
        self.alpha, self.delta = kind_param(cs.ipar, cs.fpar, i, "alpha"), cs.fpar[i, F_DELTA]
        self.decay, self.power, self.beta = cs.fpar[i, F_DECAY], cs.fpar[i, F_POWER], cs.fpar[i, F_BETA]
        self.start = cs.fpar[i, F_SCHEDULE_START]  # eps_0 of the polynomial schedule (1 for Q-learners)
        self.random_ties = bool(cs.ipar[i, I_TIE])
        self.allowed = cs.allowed[i, : int(cs.n_allowed[i])]
        self.n_allowed = int(cs.n_allowed[i])
        self.learning = True
        self.rng: SessionStream | None = None

    def reset(self, firm: int, market: MarketFacts, rng: SessionStream) -> None:
        self.rng = rng
        self.learning = True

    def state_of(self, observation: Observation) -> int:
        """engine.session.new_state's encoding: the last `memory` profiles (or own prices, base m, when rivals are
        hidden), newest in the lowest digit."""
        s = 0
        own = self.base == self.cs.n_prices
        for lag in range(self.memory):
            row = observation.prices[lag]
            digit = int(row[self.i]) if own else int(row @ self.cs.powers)
            s += digit * self.base**lag
        return s

    def act(self, observation: Observation) -> int:
        a = int(self.st.G[self.s_off + self.state_of(observation)])
        if self.learning:
            assert self.rng is not None
            if self.rng.coin(self.i) < self.st.eps[self.i]:
                a = int(self.allowed[self.rng.below(self.n_allowed)])
        return a

    def _rescan(self, base: int) -> tuple[int, float]:
        cs = self.cs
        if not self.random_ties:
            g2, gv = P._row_argmax(self.st.Q, base, cs.allowed, cs.n_allowed, self.i)
            return int(g2), gv
        assert self.rng is not None
        g2, gv, rs = P._row_argmax_random(self.st.Q, base, cs.allowed, cs.n_allowed, self.i, np.uint64(self.rng.state))
        self.rng.state = int(rs)
        return int(g2), gv

    def learn(self, observation: Observation, action: int, reward: float, next_observation: Observation) -> bool:
        st, m = self.st, self.cs.n_prices
        Q, V, G = st.Q, st.V, st.G
        s, s2, a = self.state_of(observation), self.state_of(next_observation), action
        row = self.s_off + s
        base = self.q_off + s * m
        cell = base + a
        old = Q[cell]
        new = old + self.alpha * (reward + self.delta * V[self.s_off + s2] - old)
        Q[cell] = new
        g = G[row]
        changed = False
        if a == g:
            if new >= V[row]:
                V[row] = new
            else:
                g2, gv = self._rescan(base)
                G[row] = g2
                V[row] = gv
                changed = g2 != g
        elif new > V[row]:
            G[row] = a
            V[row] = new
            changed = True
        elif self.random_ties and new == V[row]:
            g2, _ = self._rescan(base)
            G[row] = g2
            changed = g2 != g
        i = self.i
        if self.power > 0.0:  # the polynomial schedule, for period t + 1
            st.eps[i] = self.start * (1.0 + self.beta * (observation.period + 1)) ** (-self.power)
        else:
            st.eps[i] *= self.decay
        return changed

    def freeze(self) -> None:
        self.learning = False


class CompiledFixed:
    """fixed, nash and monopoly: the same price every period."""

    def __init__(self, cs: CompiledScenario, st: SessionState, firm: int) -> None:
        self.price = int(kind_param(cs.ipar, cs.fpar, firm, "price"))

    def reset(self, firm: int, market: MarketFacts, rng: SessionStream) -> None:
        pass

    def act(self, observation: Observation) -> int:
        return self.price

    def learn(self, observation: Observation, action: int, reward: float, next_observation: Observation) -> bool:
        return False

    def freeze(self) -> None:
        pass


class CompiledMyopic:
    """myopic: this period's best response to the rivals' last prices (kernel.best_response)."""

    def __init__(self, cs: CompiledScenario, st: SessionState, firm: int) -> None:
        self.cs, self.i = cs, firm

    def reset(self, firm: int, market: MarketFacts, rng: SessionStream) -> None:
        pass

    def act(self, observation: Observation) -> int:
        cs = self.cs
        last = np.ascontiguousarray(observation.prices[0], dtype=np.int64)
        return int(P.best_response(self.i, last, cs.profit, cs.expected_fine, cs.powers, cs.allowed, cs.n_allowed))

    def learn(self, observation: Observation, action: int, reward: float, next_observation: Observation) -> bool:
        return False

    def freeze(self) -> None:
        pass


class CompiledBandit:
    """The kernel's bandits (epsilon_greedy, ucb1, ucb_tuned, thompson: run_periods' bandit branches) on the
    session's own arrays: one row of sample-average profits per firm, the same choices, draws and updates."""

    def __init__(self, cs: CompiledScenario, st: SessionState, firm: int) -> None:
        self.cs, self.st, self.i = cs, st, firm
        i = firm
        kind = _kind(cs, i)
        self.kind = kind.name
        # the kind's named parameters (agents/<kind>.py's Params), read from their columns
        self.p = {name: kind_param(cs.ipar, cs.fpar, i, name) for name in kind.params._fields}
        self.q_off, self.s_off = int(cs.ipar[i, I_QOFF]), int(cs.ipar[i, I_SOFF])
        self.allowed = [int(a) for a in cs.allowed[i, : int(cs.n_allowed[i])]]
        self.random_ties = bool(cs.ipar[i, I_TIE])
        self.f = cs.fpar[i]
        self.learning = True
        self.rng: SessionStream | None = None

    def reset(self, firm: int, market: MarketFacts, rng: SessionStream) -> None:
        self.rng = rng
        self.learning = True

    def act(self, observation: Observation) -> int:
        st, i, qo, p = self.st, self.i, self.q_off, self.p
        greedy = int(st.G[self.s_off])
        if not self.learning:
            return greedy
        rng = self.rng
        assert rng is not None
        if self.kind == "epsilon_greedy":
            if rng.coin(i) < st.eps[i]:
                return self.allowed[rng.below(len(self.allowed))]
            return greedy
        N, Q = st.N, st.Q
        if self.kind in ("ucb1", "ucb_tuned"):
            a = -1
            total = 0.0
            for c in self.allowed:  # every allowed price once (lowest first), then the largest index
                total += N[qo + c]
                if N[qo + c] == 0.0 and a < 0:
                    a = c
            if a >= 0:
                return a
            log_total = math.log(total)
            best_v = -np.inf
            for c in self.allowed:
                plays = N[qo + c]
                if self.kind == "ucb1":
                    v = Q[qo + c] + p["c"] * np.sqrt(log_total / plays)
                else:
                    v = P.ucb_tuned_index(Q[qo + c], st.S2[qo + c] / plays, plays, log_total)
                if v > best_v:
                    best_v, a = v, c
            return a
        # THOMPSON: a normal draw per allowed price, in order
        prior_prec = 1.0 / (p["prior_sd"] * p["prior_sd"])
        noise_prec = 1.0 / (p["noise_sd"] * p["noise_sd"])
        best_v = -np.inf
        a = self.allowed[0]
        for c in self.allowed:
            prec = prior_prec + N[qo + c] * noise_prec
            mean = (p["prior_mean"] * prior_prec + Q[qo + c] * N[qo + c] * noise_prec) / prec
            v = mean + rng.normal() / np.sqrt(prec)
            if v > best_v:
                best_v, a = v, c
        return a

    def learn(self, observation: Observation, action: int, reward: float, next_observation: Observation) -> bool:
        cs, st, i, qo, so, f = self.cs, self.st, self.i, self.q_off, self.s_off, self.f
        cell = qo + action
        st.N[cell] += 1.0
        r = reward
        if self.kind != "epsilon_greedy":
            r = r / self.p["reward_scale"]
        st.Q[cell] += (r - st.Q[cell]) / st.N[cell]
        if self.kind == "ucb_tuned":
            st.S2[cell] += r * r
        if self.random_ties:
            assert self.rng is not None
            rs, changed = P._greedy_after_update_random(
                st.Q, qo, cs.allowed, cs.n_allowed, i, st.G, st.V, so, action, st.Q[cell], np.uint64(self.rng.state)
            )
            self.rng.state = int(rs)
        else:
            g = st.G[so]
            g2, gv = P._row_argmax(st.Q, qo, cs.allowed, cs.n_allowed, i)
            st.G[so] = g2
            st.V[so] = gv
            changed = g2 != g
        if f[F_POWER] > 0.0:
            st.eps[i] = f[F_SCHEDULE_START] * (1.0 + f[F_BETA] * (observation.period + 1)) ** (-f[F_POWER])
        else:
            st.eps[i] *= f[F_DECAY]
        return bool(changed)

    def freeze(self) -> None:
        self.learning = False


# By registered kind name (agents.registry): "fixed" covers fixed, nash and monopoly.
_ADAPTERS: dict[str, Callable[[CompiledScenario, SessionState, int], PolicyAgent]] = {
    "qlearning": CompiledQLearning,
    "fixed": CompiledFixed,
    "myopic": CompiledMyopic,
    "epsilon_greedy": CompiledBandit,
    "ucb1": CompiledBandit,
    "ucb_tuned": CompiledBandit,
    "thompson": CompiledBandit,
}


def build_agents(
    cs: CompiledScenario, st: SessionState, factories: dict[int, Callable[[], PolicyAgent]] | None = None
) -> tuple[list[PolicyAgent], list[bool]]:
    """Every firm's agent for one session (Python-path agents from `factories`, by firm, else from their specs via
    agents.python; compiled kinds through adapters) and, per firm, whether it is an adapter (which sees the true
    prices: an adapter applies the regulation's hiding in its own state encoding, as the kernel does)."""
    from algocomp.agents.python import agent_factories

    check_python_path(cs)
    if factories is None:
        factories = agent_factories(cs.scenario)
    agents: list[PolicyAgent] = []
    adapted: list[bool] = []
    for i in range(cs.n_firms):
        kind = _kind(cs, i)
        if not kind.compiled:
            agents.append(factories[i]())
            adapted.append(False)
        elif kind.name in _ADAPTERS:
            agents.append(_ADAPTERS[kind.name](cs, st, i))
            adapted.append(True)
        else:
            raise ValueError(f"firm {i}'s agent kind {kind.name} has no adapter on the Python path")
    return agents, adapted


# ------------------------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class Frozen:
    """A frozen session's position: the price history (newest first), the period and each firm's last price
    change (the repricing limit). `state` is what the next profile depends on (session.shock_lengths' key)."""

    history: np.ndarray
    period: int
    last_change: np.ndarray

    def copy(self) -> Frozen:
        return Frozen(self.history.copy(), self.period, self.last_change.copy())

    @property
    def act(self) -> np.ndarray:
        return self.history[0]

    @property
    def state(self) -> np.ndarray:
        return self.history.reshape(-1)


class PythonSession:
    """A session's agents, state and stream, and the loop that advances it."""

    def __init__(
        self,
        cs: CompiledScenario,
        seed: int,
        factories: dict[int, Callable[[], PolicyAgent]] | None = None,
    ) -> None:
        self.cs = cs
        self.st = st = new_state(cs, seed)
        self.stream = SessionStream(int(st.rng[0]))
        self.agents, self.adapted = build_agents(cs, st, factories)
        self.hide = bool(cs.scenario.regulation.hide_rival_prices)
        specs = cs.scenario.agent_list()
        for i, agent in enumerate(self.agents):
            agent.reset(i, market_facts(cs, specs[i]), self.stream)
        self.history = np.ascontiguousarray(st.history, dtype=np.int64)
        self.history.setflags(write=False)
        self.stopped = False
        self.allowed_sets = [
            frozenset(int(a) for a in cs.allowed[i, : int(cs.n_allowed[i])]) for i in range(cs.n_firms)
        ]

    # -- observations

    def observations(self, history: np.ndarray, period: int) -> list[Observation]:
        """One observation per firm; rivals' prices are -1 for Python agents when the regulation hides them."""
        shared = Observation(period, history)
        if not self.hide:
            return [shared] * self.cs.n_firms
        out = []
        for i, adapted in enumerate(self.adapted):
            if adapted:
                out.append(shared)
                continue
            masked = np.full_like(history, -1)
            masked[:, i] = history[:, i]
            masked.setflags(write=False)
            out.append(Observation(period, masked))
        return out

    def _price(self, i: int, a) -> int:
        """An agent's price index, replaced by the nearest allowed price when the regulation forbids it."""
        cs = self.cs
        a = int(a)
        if not 0 <= a < cs.n_prices:
            raise ValueError(f"firm {i}'s agent returned price index {a}; the grid has indices 0..{cs.n_prices - 1}")
        if a in self.allowed_sets[i]:
            return a
        return int(P._nearest_allowed(i, float(cs.grid[i, a]), cs.grid, cs.allowed, cs.n_allowed))

    # -- learning

    def advance(self, periods: int, should_stop: Callable[[], bool] | None = None) -> int:
        """Learn for up to `periods` periods (the kernel's learning step, period by period); returns how many ran.

        should_stop() is polled every STOP_CHECK_PERIODS periods (a chunk of the compiled path's length takes
        minutes here); when it answers True the call returns at once with self.stopped set."""
        cs, st, stream, agents = self.cs, self.st, self.stream, self.agents
        n = cs.n_firms
        h = cs.scenario.horizon
        clock = st.clock
        t = int(clock[P.C_T])
        stable = int(clock[P.C_STABLE])
        tail_len = st.tail_a.shape[0]
        tail_slot = t % tail_len if tail_len > 0 else 0
        count_visits = st.visits.shape[0] == cs.n_profiles and st.visits.shape[0] > 0
        stochastic = cs.noise_kind != 0 or cs.audit_probability > 0.0
        reprice = cs.reprice_every
        new_act = np.empty(n, dtype=np.int64)
        realised_q = np.empty(n)
        realised_pi = np.empty(n)
        shock = np.zeros(n)
        powers = cs.powers
        done = 0
        history = self.history
        for _ in range(periods):
            if should_stop is not None and done and done % STOP_CHECK_PERIODS == 0 and should_stop():
                self.stopped = True
                break
            stream.start_period(n)
            obs = self.observations(history, t)
            for i in range(n):
                if reprice > 1 and t - st.last_change[i] < reprice:
                    new_act[i] = st.act[i]
                else:
                    new_act[i] = self._price(i, agents[i].act(obs[i]))
            for i in range(n):
                if new_act[i] != st.act[i]:
                    st.last_change[i] = t
            j = int(new_act @ powers)
            if stochastic:
                audited = False
                if cs.noise_kind == NOISE_PROFIT_UNIFORM:
                    for i in range(n):
                        shock[i] = stream.symmetric_unit()
                elif cs.noise_kind != 0:
                    for i in range(n):
                        shock[i] = stream.normal()
                if cs.audit_probability > 0.0:
                    audited = stream.unit() < cs.audit_probability
                for i in range(n):
                    realised_q[i], realised_pi[i] = P._realised(
                        i,
                        j,
                        int(new_act[i]),
                        shock[i],
                        audited,
                        cs.profit,
                        cs.quantity,
                        cs.grid,
                        cs.costs,
                        cs.noise_kind,
                        cs.noise_sd,
                        cs.audit_fine,
                        cs.audit_threshold,
                    )
            else:
                realised_q[:] = cs.quantity[j]
                realised_pi[:] = cs.profit[j]
            following = np.empty_like(history)
            following[0] = new_act
            following[1:] = history[:-1]
            following.setflags(write=False)
            next_obs = self.observations(following, t + 1)
            for i in range(n):
                changed = agents[i].learn(obs[i], int(new_act[i]), realised_pi[i], next_obs[i])
                if changed is None or changed:
                    stable = -1
            history = following
            st.act[:] = new_act
            # ---- logging (kernel.run_periods, or run_qlearning's visit counts where the compiled path uses them)
            if count_visits:
                st.visits[j] += 1
            else:
                acc = st.acc_f
                for i in range(n):
                    acc[i] += cs.grid[i, new_act[i]]
                    acc[n + i] += realised_q[i]
                    acc[2 * n + i] += realised_pi[i]
                acc[3 * n] += cs.consumer_surplus[j]
            clock[P.C_ACC_COUNT] += 1
            if clock[P.C_ACC_COUNT] == clock[P.C_INTERVAL]:
                if count_visits:
                    K._add_visits(st.visits, st.acc_f, cs.grid, powers, cs.quantity, cs.profit, cs.consumer_surplus)
                P._flush_interval(st.log_f, st.log_i, st.acc_f, clock, t)
            if tail_len > 0:
                st.tail_a[tail_slot] = new_act
                st.tail_q[tail_slot] = realised_q
                st.tail_pi[tail_slot] = realised_pi
                tail_slot = (tail_slot + 1) % tail_len
            stable += 1
            t += 1
            done += 1
            if stable >= h.convergence_periods and clock[P.C_CONVERGED_AT] < 0:
                clock[P.C_CONVERGED_AT] = t
                if h.stop_at_convergence:
                    break
        if count_visits:
            K._add_visits(st.visits, st.acc_f, cs.grid, powers, cs.quantity, cs.profit, cs.consumer_surplus)
        self.history = history
        st.rng[0] = np.uint64(stream.state)
        clock[P.C_T] = t
        clock[P.C_STABLE] = stable
        return done

    def learn(
        self,
        *,
        chunk: int = DEFAULT_CHUNK,
        should_stop: Callable[[], bool] | None = None,
    ) -> bool:
        """The learning phase, in the compiled path's chunks (engine.session.learn); False if asked to stop."""
        h = self.cs.scenario.horizon
        st = self.st
        while st.period < h.max_periods:
            self.advance(min(chunk, h.max_periods - st.period), should_stop)
            if self.stopped:
                return False
            if h.stop_at_convergence and st.converged_at >= 0:
                break
            if should_stop is not None and should_stop():
                return False
        return True

    # -- frozen play

    def frozen(self) -> Frozen:
        for agent in self.agents:
            agent.freeze()
        return Frozen(self.history.copy(), self.st.period, self.st.last_change.copy())

    def play(self, cs: CompiledScenario, fr: Frozen, periods: int, *, deviate_firm: int = -1) -> np.ndarray:
        """Greedy play of the frozen agents from `fr` (advanced to the end), as session.play_greedy: with
        deviate_firm >= 0 that firm plays its static best response in the first period. Returns the actions."""
        n = cs.n_firms
        record = np.zeros((periods, n), dtype=np.int64)
        new_act = np.empty(n, dtype=np.int64)
        reprice = cs.reprice_every
        for step in range(periods):
            history = fr.history
            history.setflags(write=False)
            obs = self.observations(history, fr.period)
            for i in range(n):
                if reprice > 1 and fr.period - fr.last_change[i] < reprice:
                    new_act[i] = history[0, i]
                else:
                    new_act[i] = self._price(i, self.agents[i].act(obs[i]))
            if step == 0 and deviate_firm >= 0:
                new_act[deviate_firm] = P.best_response(
                    deviate_firm, new_act, cs.profit, cs.expected_fine, cs.powers, cs.allowed, cs.n_allowed
                )
            record[step] = new_act
            for i in range(n):
                if new_act[i] != history[0, i]:
                    fr.last_change[i] = fr.period
            following = np.empty_like(history)
            following[0] = new_act
            following[1:] = history[:-1]
            fr.history = following
            fr.period += 1
        return record

    # -- deviation checks

    def deviation_check(self, starts: list[Frozen]) -> DeviationCheck | None:
        """Calvano et al.'s checks (engine.deviations) where the compiled path makes them (simultaneous moves, every
        strategy a function of recent prices: tabular kinds and, by the protocol, frozen Python agents), on the
        frozen strategies tabulated over every price history of the observed depth, when those are few enough."""
        cs = self.cs
        if cs.sequential or not starts:
            return None
        kinds = [_kind(cs, i) for i in range(cs.n_firms)]
        if not all(kind.greedy_by_state or not kind.compiled for kind in kinds):
            return None
        n, m, profiles = cs.n_firms, cs.n_prices, cs.n_profiles
        learners = [agent for agent in self.agents if isinstance(agent, CompiledQLearning)]
        if len(learners) == n:
            # the compiled path's own tables and state encodings
            cycle_states = np.array(
                [
                    [agent.state_of(obs) for agent, obs in zip(learners, self.observations(s.history, s.period))]
                    for s in starts
                ],
                dtype=np.int64,
            )
            return check_cycle(cs, self.st.G, cycle_states)
        depth = history_depth(cs)
        states = profiles**depth
        if states > MAX_TABULATED_STATES:
            return None
        codes = np.arange(states, dtype=np.int64)
        lags = (codes[:, None] // profiles ** np.arange(depth)[None, :]) % profiles  # (states, depth)
        prices = (lags[:, :, None] // cs.powers[None, None, :]) % m  # (states, depth, n)
        G = np.zeros(n * states, dtype=np.int64)
        for s in range(states):
            history = np.ascontiguousarray(prices[s])
            history.setflags(write=False)
            obs = self.observations(history, 0)
            for i in range(n):
                G[i * states + s] = self._price(i, self.agents[i].act(obs[i]))
        n_int, n_float = registry.widths()
        ipar = np.zeros((n, n_int), dtype=np.int64)
        fpar = np.zeros((n, n_float))
        specs = cs.scenario.agent_list()
        for i in range(n):
            ipar[i, I_KIND] = qlearning.KIND.code  # a table of greedy prices by state, read as a Q-learner's
            ipar[i, I_SOFF] = i * states
            ipar[i, I_MEMORY] = depth
            ipar[i, I_BASE] = profiles
            ipar[i, I_MODK1] = profiles ** (depth - 1)
            fpar[i, F_DELTA] = float(getattr(specs[i], "delta", 0.95))
        tabulated = dataclasses.replace(cs, ipar=ipar, fpar=fpar)
        weights = profiles ** np.arange(depth)
        cycle_states = np.array([[int((start.history @ cs.powers) @ weights)] * n for start in starts], dtype=np.int64)
        return check_cycle(tabulated, G, cycle_states)


def run_python_session(
    cs: CompiledScenario,
    session: int,
    seed: int,
    *,
    chunk: int = DEFAULT_CHUNK,
    should_stop: Callable[[], bool] | None = None,
    factories: dict[int, Callable[[], PolicyAgent]] | None = None,
) -> SessionResult | None:
    """Simulate one session end to end on the Python path (engine.session.run_session's steps); None if
    should_stop() interrupted it. `factories` (firm -> a function making a fresh agent) stand in for the specs of
    Python-path agents (tests use it); by default agents.python builds them from the scenario."""
    from algocomp.metrics.session import session_metrics

    ps = PythonSession(cs, seed, factories)
    st = ps.st
    if not ps.learn(chunk=chunk, should_stop=should_stop):
        return None
    intervals = interval_means(cs, st)

    lg = cs.scenario.logging
    frozen = ps.frozen()
    path = ps.play(cs, frozen, lg.cycle_search)
    cycle, cycle_length = limit_cycle(path)
    before = frozen.act.copy()
    counterfactual = np.vstack([before[None, :], ps.play(cs, frozen.copy(), lg.impulse_periods + 1)])
    deviation = np.vstack(
        [before[None, :], ps.play(cs, frozen.copy(), lg.impulse_periods + 1, deviate_firm=lg.deviating_firm)]
    )
    starts = cycle_starts(cs, frozen, cycle_length, play=ps.play)
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
        shocks=shock_lengths(cs, starts, play=ps.play),
        check=ps.deviation_check(starts),
        tail_profit=tail_outcomes(cs, st)[2],
    )
    return SessionResult(
        session=session,
        seed=seed,
        panel_columns=panel_columns(cs, st, session, intervals),
        impulse_columns=_impulse_columns(cs, session, deviation, counterfactual),
        metrics=metrics,
    )
