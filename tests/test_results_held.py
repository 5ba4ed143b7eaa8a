"""Every preset's results, held bit for bit across changes to how the engine is organised (issue 12: the agent
registry moved the learning rules out of the kernel and must not change a single result).

Short experiments of every preset, and of set-ups exercising every agent kind and option no preset uses, were run
with the engine before the registry (commit 25e7e57); each is held by sha256 of its summary (timing left out)
and its panel. The DQN presets, which came with the Python path, are held to main's engine before the registry
was merged into it (commit fbb141c). The scenarios' fingerprints (scenario_hash) are held too: moving the agent
specs must not change a stored scenario's identity.

The summaries are the same bits on every machine: one summary figure, the comovement of prices, was computed with
np.corrcoef, whose dot products go to the BLAS, and the BLAS picks its kernels by CPU, which round differently (the
recorded digests came from machines with AVX-512; an AVX2 machine gave other last digits). It is now computed from
numpy's own sums, and the digests of the 23 set-ups that have it were recorded again; nothing else changed (the
panels and every other figure are as before). A test runs every set-up again under another BLAS kernel
(OPENBLAS_CORETYPE) and must get the same digests. numpy's exp, log and pow are CPU-dependent too (its own SIMD
code with AVX-512): the market's tables, benchmarks and metrics take them from the C library (markets.libm), which
on this AVX2 machine gave the same bits as numpy, so no digest changed; a test fails any run that calls them.
The linear market's benchmarks came from np.linalg.solve, whose LAPACK goes through the BLAS too: the Nehalem
kernels happened to give the AVX2 bits on a 2 x 2 system, but an AVX-512 machine (SkylakeX kernels) did not. They
are now written out (markets.benchmarks), and the one set-up with a linear market (hansen-2021-ucb) was recorded
again; the same test refuses np.linalg and np.dot.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from algocomp.engine.experiment import run_experiment
from algocomp.scenarios import apply_overrides, list_presets, load_scenario, scenario_hash

SHORT = [
    "sessions=2",
    "seed=11",
    "horizon.max_periods=30000",
    "horizon.convergence_periods=5000",
    "logging.interval=1000",
    "logging.tail=20",
    "logging.cycle_search=200",
]
BASE = "calvano-2020-baseline"

EXTRA = {  # set-ups no preset has: every agent kind, option and lever
    "fixed-vs-nash": (BASE, ["agents=[{type: fixed, price: 1.7}, {type: nash}]"]),
    "monopoly-vs-myopic": (BASE, ["agents=[{type: monopoly}, {type: myopic}]"]),
    "epsilon-greedy-poly-random": (
        BASE,
        [
            "agents={type: epsilon_greedy, epsilon: 0.2, beta: 0.001, schedule: polynomial, power: 0.7, "
            "tie_break: random}"
        ],
    ),
    "ucb1": (BASE, ["agents={type: ucb1, c: 0.8}"]),
    "ucb-tuned-raw": (BASE, ["agents={type: ucb_tuned, scale_rewards: false}"]),
    "thompson": (BASE, ["agents={type: thompson, prior_mean: 0.3, prior_sd: 0.7, noise_sd: 0.2}"]),
    "qlearning-sync": (BASE, ["agents={type: qlearning, update: synchronous, beta: 0.0002}"]),
    "qlearning-poly-random-noise": (
        BASE,
        [
            "agents={type: qlearning, schedule: polynomial, power: 0.6, beta: 0.001, tie_break: random, q_init: zero}",
            "market.noise={kind: multiplicative, sd: 0.1}",
        ],
    ),
    "qlearning-uniform-audit": (
        BASE,
        [
            "agents={type: qlearning, q_init: {uniform: [0, 5]}, memory: 2}",
            "regulation.audit={probability: 0.1, threshold: {basis: nash_markup, value: 0.05}, fine: 0.1}",
        ],
    ),
    "qlearning-reprice-hidden": (BASE, ["regulation.reprice_every=3", "regulation.hide_rival_prices=true"]),
    "expected-sarsa-random": (BASE, ["agents={type: expected_sarsa, tie_break: random, beta: 0.0001}"]),
    "actor-critic": (BASE, ["agents={type: actor_critic, beta: 0.0001}"]),
    "grim-vs-q": (BASE, ["agents=[{type: grim_trigger}, {type: qlearning, beta: 0.0002}]"]),
    "tft-vs-eps": (BASE, ["agents=[{type: tit_for_tat, initial: 1.8}, {type: epsilon_greedy}]"]),
    "klein-poly-random": (
        "klein-2021-sequential",
        ["agents={type: klein_qlearning, schedule: polynomial, beta: 0.001, tie_break: random}"],
    ),
    "sequential-bandits": ("klein-2021-sequential", ["agents=[{type: ucb1}, {type: thompson}]"]),
    "sequential-eps-ucbt": (
        "klein-2021-sequential",
        ["agents=[{type: epsilon_greedy, tie_break: random}, {type: ucb_tuned}]"],
    ),
    "profit-uniform-ucbt": ("hansen-2021-ucb", []),
}

SUMMARIES = {
    "actor-critic": "dadcf43b649801305baf0b224e2649fff7670b56c7ca3b9add7c7d526b3efa9c",
    "asker-2022-calvano-market-synchronous": "15ea65331d02c5c32efc2a21dff128ec0f67d098963e31e4f3093ef6ba2dd8a3",
    "asker-2022-unit-demand-synchronous": "a730df3a3ba8c847167e95167df95651fd02d15a9d9f0ee45151e376f7d8e586",
    "asker-2022-unit-demand-synchronous-delta95": "8083fbdcc5b06bdb416b664cc939693afc14bb4f2c085d8be77e5e2f7f33a234",
    "calvano-2020-baseline": "416ae5233250059ac19e2878fea913ca208bc9eb394f751a86801631c48888ae",
    "calvano-2020-n3": "200c23e23873fb4650b9cbedb37d8e0c2bb4ab73731f8f125c9e4a8a435b9c2f",
    "calvano-2020-n4": "75985677d981c942f78bbfdf3b997b6f54fa733b159031b074780d5eec536f20",
    "calvano-2020-price-cap": "8da35cc5be8822c3fbc3461528af58d9e93a9aeed03d0747df834c7cce92816c",
    "dqn-vs-dqn": "5d085ee18b302fe9e85b6cc972cfebf55dbbe4713bf98fb7b0cfe8f596bece54",  # main, fbb141c
    "dqn-vs-qlearning": "a302846b2e035708afaac604bf8ac2d40f8e8c1e7c54013d064334dc5de3b80e",  # main, fbb141c
    "epsilon-greedy-poly-random": "a1f77782de881c72a0ee661cc09dc75da6488aaa433869dd1aed7d4e693dc9a2",
    "expected-sarsa-random": "5347e398918349dc8167a40e23325fd0d5b23c669808874f421dc090e197cabc",
    "fixed-vs-nash": "2686cf6e90a92ad5e4ef71f495d0370e7eeefe9f31ff1b5be44ac8ea15da109b",
    "grim-vs-q": "e2220269e047c2fd65d306cc096a91d270a325c3d19be82b16ebff7a823f1e1e",
    "hansen-2021-ucb": "ead5e62629286016dfdc9988994d43b79d1d3e2349930cc4fb37898773fdcccc",
    "johnson-2023-steering": "faf06c276012b4dd6982a68b27e1035b4b1f2845007b8c419368e2ed891666ed",
    "klein-2021-sequential": "7fe90597614e93133363cc9eda64f32f4a0a82184576f1a2c908ff178483d90c",
    "klein-poly-random": "0f50bbb872e1b857fcabe3e279fde741a3aa44e298bdab588db74379e2b932b8",
    "monopoly-vs-myopic": "7ff6f5c866d2d8a806e3a8f628b3b46829d8dd7d4f441e3ab52f4fc82f423fa9",
    "myopic-vs-bandit": "774c04106c1eed3e4b5e602d190b4d287543920b4845339bfe8cfc4f74ec7045",
    "profit-uniform-ucbt": "ead5e62629286016dfdc9988994d43b79d1d3e2349930cc4fb37898773fdcccc",
    "qlearning-poly-random-noise": "013a29e24cbaa2f055c6ef9ad6370c40c792fc643dc9854b33a8178db0af3235",
    "qlearning-reprice-hidden": "c2476a39c1fd2969acccec9af20fb1fca75b626452c233848257962b6475149b",
    "qlearning-sync": "ccea94058611e4a85fe59d90b8d5904ac7eb6457338b0e74689e727081d64c25",
    "qlearning-uniform-audit": "7f2bb06bc8777f9ccc698235b3848795380dbc7345f4e8974844424d790fbe02",
    "sequential-bandits": "266cf113fde557ee560bb6adf08b689e2ed4726994627905b9c2346cb5fe09ee",
    "sequential-eps-ucbt": "61a65da9f5098efaa83c9c7ea180eeda5fd812040dc77086e43a20689b8e8080",
    "tft-vs-eps": "efe4c7404729637415d06f735f321eb20f49ee4039bf0c73e680a9b3ee6c0a09",
    "thompson": "37420af67d74d84c2281d85cf6d6ca25bf8896357025f1c7b3d3d3e0a6a89f71",
    "ucb-tuned-raw": "d5a38724aadaefc2ea0d09661b44b7636b7c970b26be1599f92f700b058c8a4a",
    "ucb1": "a5cbdeb639e3242a65c6cfd9616d05364b352b3a9ec90c0b37af12e6ad4b6e0d",
}

SCENARIO_HASHES = {
    "actor-critic": "c74b5e7ba86a845bc9ba0680a035735beb91da5fa1ddc6533f65e337cebffa5b",
    "asker-2022-calvano-market-synchronous": "c61fb8e4dea1e6ed1fa86b145fc6ae1baedfc781696894fe99a05cae6b5b7ff3",
    "asker-2022-unit-demand-synchronous": "974f1eb72a13e434d3483526ea9654828cfe04e404b2da466941e2b7b7bb0abb",
    "asker-2022-unit-demand-synchronous-delta95": "7d03b98a651c688022a6f8d069420da21d070d92d3a1cf3fb95ea6d3484d78d3",
    "calvano-2020-baseline": "35d883ac2e277d11818b3062d809deab80dea029e07ecd1a6c7072a702e3f22c",
    "calvano-2020-n3": "d243d7c65f252c6561897cd852c6abf1f93f41318c04ddb041dd1d3362b751a4",
    "calvano-2020-n4": "6f8101f60f15cc744f18557d16186da64395f5889e928794a7cbaae2098b82fe",
    "calvano-2020-price-cap": "073ad51931e13d88fe0e7be848867198907a498a6ce69b4111f317c882f51cc9",
    "dqn-vs-dqn": "ac30eef7f0233c3e3d2ae9605a7b821502cbebfe672712934da5c9a1c419bc27",  # main, fbb141c
    "dqn-vs-qlearning": "b80278baca5f0ef15bd4cdba48d5e0447b289d9f25da58221625baf12508cb88",  # main, fbb141c
    "epsilon-greedy-poly-random": "05581d8e4593add3eba3389b18c84d8a66727c836801baf69f1d3bd69023fa7a",
    "expected-sarsa-random": "f138f199486e0513ea42ae42f39a6d4b203b0e8e2b0f74d9f89412063eaf49bb",
    "fixed-vs-nash": "fe417d30b9bdd765f3f4d4d62ba25aa65ab5e22c7d90b01833a60f22e38fe30e",
    "grim-vs-q": "b9649b1f7f8be976716ef9c2fe66e4a78f1a17edd6a13fa215c96ea2e1d7a7a3",
    "hansen-2021-ucb": "59698d836eb601b7d43eee704e7d802960e5ead28a085f608f8b9090d29beaec",
    "johnson-2023-steering": "527a4645a9aa311ec7558d6ea3bf50f01e81fa9878b6fac187303d3ff89c8a73",
    "klein-2021-sequential": "fe9c18873144f2a77bce1d710642e18d51bf1f250513694356ef5c1a9ef8cd79",
    "klein-poly-random": "100de9e5b29dd6c4081481b014f785ce794cc886342348106c58d1da062d6003",
    "monopoly-vs-myopic": "24ace1bc8712135c1973146301acdbb384001c2f5c1702fe35aa6fb340c7c2ac",
    "myopic-vs-bandit": "cf27e9ded0202887c4188f993a33c7708ab81f354c7f515d38279f5d5f33bb40",
    "profit-uniform-ucbt": "59698d836eb601b7d43eee704e7d802960e5ead28a085f608f8b9090d29beaec",
    "qlearning-poly-random-noise": "6bbbb202a3da9bb5e3115067e98f590fde7a5c98d077cde640347cd391027578",
    "qlearning-reprice-hidden": "7777143b61ba3048d9e427adca1b3371deca90159d3a658e2f1c84a82e0b5da1",
    "qlearning-sync": "92402681c8ea653e07a361211e86aeb740ac53886e20f05dd16cc5b1944baec4",
    "qlearning-uniform-audit": "ff999d742d242135fdb63c73f84802a57b1b195bd35617bfa9471a0c286629eb",
    "sequential-bandits": "ecb3e149c055fb71947d14818194033c856afd44d6ae38e17311f324ed8c5d62",
    "sequential-eps-ucbt": "43fe241085b62133988ab4c15e056eaf0f92f076dfe1456953b33b1c28a37270",
    "tft-vs-eps": "b28f41ce493827535efde5ae64e4fbfd418f320934c65d13420aa4ec1b7fd3d7",
    "thompson": "e62170616c3b735cd926dcacfc95a10a31c6d58082823e8a4da1766b23baae1c",
    "ucb-tuned-raw": "cbbd13a38a400c4f2a4f330fb682506f07327954cac2d6d6cb2520ac4b0950e8",
    "ucb1": "883a40e866cd7f5e2d258288eb0d38ad3493cb9e4745c6a787e8a5a82153f92d",
}


def _case(name: str):
    preset, overrides = EXTRA.get(name, (name, []))
    return preset, overrides


def _digest(result) -> str:
    digest = hashlib.sha256()
    summary = {k: v for k, v in result.summary.items() if k not in ("elapsed_s", "periods_per_second")}
    digest.update(json.dumps(summary, sort_keys=True, default=repr).encode())
    digest.update(result.panel.to_csv(float_format=repr).encode())
    return digest.hexdigest()


def test_every_preset_is_held():
    assert set(list_presets()) <= set(SUMMARIES), "a new preset needs its recorded summary here"


@pytest.mark.parametrize("name", sorted(SUMMARIES))
def test_summary_is_bit_identical_to_the_engine_before_the_registry(name):
    preset, overrides = _case(name)
    scenario = apply_overrides(load_scenario(preset), [*overrides, *SHORT])
    assert _digest(run_experiment(scenario, workers=1)) == SUMMARIES[name]


@pytest.mark.parametrize("name", sorted(SCENARIO_HASHES))
def test_scenario_hash_is_unchanged(name):
    preset, overrides = _case(name)
    scenario = load_scenario(preset) if name in list_presets() else apply_overrides(load_scenario(preset), overrides)
    assert scenario_hash(scenario) == SCENARIO_HASHES[name]


def digests() -> dict[str, str]:
    """Every set-up's digest, as the test above computes it."""
    found = {}
    for name in sorted(SUMMARIES):
        preset, overrides = _case(name)
        found[name] = _digest(run_experiment(apply_overrides(load_scenario(preset), [*overrides, *SHORT]), workers=1))
    return found


@pytest.mark.skipif(platform.machine() != "x86_64", reason="OpenBLAS's Nehalem kernels are x86-64's")
def test_summaries_do_not_depend_on_the_cpus_blas_kernels():
    """The digests again with OpenBLAS told to use its Nehalem kernels (SSE only, so they run on any x86-64 CPU and
    differ from the AVX2 or AVX-512 ones it picks itself): a result computed through the BLAS would change."""
    program = (
        "import json, numpy, threadpoolctl, test_results_held as held; "
        "blas = [i.get('architecture') for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']; "
        "print(json.dumps({'blas': blas, 'digests': held.digests()}))"
    )
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OPENBLAS_CORETYPE": "Nehalem", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["blas"] == ["Nehalem"], f"numpy's BLAS did not take the Nehalem kernels: {found['blas']}"
    assert {name: digest for name, digest in found["digests"].items() if digest != SUMMARIES[name]} == {}


# numpy's own SIMD implementations (on CPUs with AVX-512, or through SVML) of these round differently from the C
# library in the last bit; markets.libm is the engine's way to them.
NUMPY_SIMD_MATH = ("exp", "log", "power", "exp2", "expm1", "log2", "log10", "log1p", "tanh", "sinh", "cosh", "cbrt")
# These go through the BLAS or LAPACK, whose kernels the CPU picks: np.linalg.solve of the linear market's 2 x 2
# benchmarks gave other last digits on an AVX-512 machine (SkylakeX kernels) than on AVX2 ones (Haswell, Nehalem).
NUMPY_BLAS = {np: ("dot", "inner", "vdot", "corrcoef", "cov"), np.linalg: ("solve", "inv", "lstsq", "pinv", "det")}
ONE_PER_PATH = [  # each market model and each way agents run, and the DQN's Python path
    "calvano-2020-baseline",
    "calvano-2020-n3",
    "hansen-2021-ucb",
    "asker-2022-unit-demand-synchronous",
    "klein-2021-sequential",
    "johnson-2023-steering",
    "myopic-vs-bandit",
    "actor-critic",
    "dqn-vs-qlearning",
]


def test_no_result_goes_through_numpys_own_math_functions_or_the_blas(monkeypatch):
    """The same set-up on another machine must give the same bits, so no figure may come from numpy's exp, log, pow
    and the like, whose results depend on the CPU's SIMD level, nor from the BLAS and LAPACK (the DQN's network
    aside, whose products are `@` and not caught here). Each set-up runs once (compiling what it needs), then again
    with those functions made to fail."""

    def refuse(name, instead="algocomp.markets.libm"):
        def call(*args, **kwargs):
            raise AssertionError(f"{name} was called: use {instead} (numpy's result depends on the CPU)")

        return call

    scenarios = [apply_overrides(load_scenario(_case(n)[0]), [*_case(n)[1], *SHORT]) for n in ONE_PER_PATH]
    for scenario in scenarios:
        run_experiment(scenario, workers=1)
    for name in NUMPY_SIMD_MATH:
        monkeypatch.setattr(np, name, refuse(f"np.{name}"))
    for module, names in NUMPY_BLAS.items():
        for name in names:
            monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}", "elementwise products and np.sum"))
    for name, scenario in zip(ONE_PER_PATH, scenarios, strict=True):
        assert _digest(run_experiment(scenario, workers=1)) == SUMMARIES[name], name
