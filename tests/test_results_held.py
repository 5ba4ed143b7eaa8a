"""Every preset's results, held bit for bit across changes to how the engine is organised (issue 12: the agent
registry moved the learning rules out of the kernel and must not change a single result).

Short experiments of every preset, and of set-ups exercising every agent kind and option no preset uses, were run
with the engine before the registry (commit 25e7e57); each is held by sha256 of its summary (timing left out)
and its panel. The DQN presets, which came with the Python path, are held to main's engine before the registry
was merged into it (commit fbb141c). The scenarios' fingerprints (scenario_hash) are held too: moving the agent
specs must not change a stored scenario's identity.
"""

from __future__ import annotations

import hashlib
import json

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
    "asker-2022-calvano-market-synchronous": "07ff93b103cfdeb3be9048fcd1f8a492554a45e8fd32352793d56e9734ac1ff0",
    "asker-2022-unit-demand-synchronous": "a730df3a3ba8c847167e95167df95651fd02d15a9d9f0ee45151e376f7d8e586",
    "asker-2022-unit-demand-synchronous-delta95": "f95bc7a064971e0e3a623ce49322f30b4972858aa60b555d5668cac0fe360d5e",
    "calvano-2020-baseline": "d0cb6502d2ee9ee7369f8e59f438e4df9427136079effdd3a68fe6a130f64b6e",
    "calvano-2020-n3": "1582237a609a0e52fe569e0b59e8b998daabf2bd5d03c53884b29e9e0480f3d3",
    "calvano-2020-n4": "8acfdd993e9ac47227827da11dd856264f4552ddbe0035d6187405cccb02cc36",
    "calvano-2020-price-cap": "8da35cc5be8822c3fbc3461528af58d9e93a9aeed03d0747df834c7cce92816c",
    "dqn-vs-dqn": "5d085ee18b302fe9e85b6cc972cfebf55dbbe4713bf98fb7b0cfe8f596bece54",  # main, fbb141c
    "dqn-vs-qlearning": "fde28c5238daa282d28035043f05b9b874f177f86a6b14bcdb15e8860ca3a000",  # main, fbb141c
    "epsilon-greedy-poly-random": "fa233809a79752c9a416ca3d4b1e7d44d0c0f6e32945f7fa5a5f7472360e35db",
    "expected-sarsa-random": "03c856b823fb1b7ef942d4b0b8ca7fcf2bcbbf10080d47e1cafa8376e0527cfe",
    "fixed-vs-nash": "2686cf6e90a92ad5e4ef71f495d0370e7eeefe9f31ff1b5be44ac8ea15da109b",
    "grim-vs-q": "64daba01460699c2d7d558c76a6fc5ddb4409711b6d8cdf44688dc8ce004e345",
    "hansen-2021-ucb": "7346456a1588b31c6ff4bf93f84eb34ddc50c5f670fdf76c339c10b5d92db240",
    "johnson-2023-steering": "8593a16d977f11c7b8dafb63b0e427eb368ab840a53f54c89082e19edf46c60b",
    "klein-2021-sequential": "12bc3eba632710f9ad74f3d96c030a9c965f6d19c1ee054d85198b6a15819677",
    "klein-poly-random": "d308b36349dab7466497b476dbd2427ac9fecac33e08dabf4298a9de3009d76d",
    "monopoly-vs-myopic": "7ff6f5c866d2d8a806e3a8f628b3b46829d8dd7d4f441e3ab52f4fc82f423fa9",
    "myopic-vs-bandit": "bbe57a10808a4a8f45955c6bd77562582298118cd845289482dd557b0a1aade5",
    "profit-uniform-ucbt": "7346456a1588b31c6ff4bf93f84eb34ddc50c5f670fdf76c339c10b5d92db240",
    "qlearning-poly-random-noise": "8f7af2eaa5cc126d657f0ada64c1fc5cfa2d60368bf145e76915398c9e640a6d",
    "qlearning-reprice-hidden": "35da06579fb89e16be80a65536113834f4c1c764a3b2723571958d8143aadf41",
    "qlearning-sync": "ab8cbc658e3d543587d93cb79de1bc8e2f2f4a02563345e3a8535e33aee1bc88",
    "qlearning-uniform-audit": "f7bbdaac9a4668585891c688fa62c77af97ec32a988356dfe2a6701b1c72236e",
    "sequential-bandits": "99b03b8127b068d81b35e0438c39d9dbbccfd709a966bf149e66774de852f982",
    "sequential-eps-ucbt": "77c109bd2bb47835e0e5c931ad20108e6291bb5a79d8810420b87c55af75805f",
    "tft-vs-eps": "c596c493ef91023f6e59a102649dd88fa3b1cb7f1bd5cb82d4a8adacd539815a",
    "thompson": "639df96f3dca8bfdb0b45f3df395b1abcca26d5a53504ef483b7380ba0cb5fd9",
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
