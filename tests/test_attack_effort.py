"""Equal attack effort across arms (harness.run.attacks): `attack_budget` per arm, the `Effort` counter against
the passes a model really made, and the random starts each arm scores."""
import pytest
import torch
from torch import nn

from harness.run import attacks, pipelines
from harness.spec import budget
from harness.spec.config import AttackConfig

N, C, SIDE, CLASSES = 12, 3, 4, 3
STEPS = 3
EPS = (2.0, 8.0)


class Passes(nn.Module):
    """`model`, counting the example-passes it makes: with gradients on (attack steps) and without."""

    def __init__(self, model):
        super().__init__()
        self.model, self.gradient, self.forward_ = model, 0, 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.gradient += len(x)
        else:
            self.forward_ += len(x)
        return self.model(x)


def _arm(pipeline: str) -> Passes:
    """A tiny random linear net behind `pipeline` (identity normalization), counted."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(C * SIDE * SIDE, CLASSES))
    return Passes(pipelines.Deployed(pipelines.create(pipeline, (0.0,) * C, (1.0,) * C, None), net)).eval()


def _data():
    gen = torch.Generator().manual_seed(1)
    return torch.rand(N, C, SIDE, SIDE, generator=gen), torch.randint(0, CLASSES, (N,), generator=gen)


ROUNDING = AttackConfig(eps=EPS, steps=STEPS, modes=("off", "bpda"), restarts=1, n_eval=N)
PLAIN = AttackConfig(eps=EPS, steps=STEPS, restarts=2, n_eval=N)  # as many restarts as ROUNDING's gradient modes


def _spent(point: dict, key: str) -> float:
    """Summed over the modes and radii of an epoch: `key` per example."""
    return sum(per_mode[key] for per_eps in point["effort"]["spent"].values() for per_mode in per_eps.values())


def test_the_budget_counts_gradient_modes_times_restarts():
    rounding, plain = budget.attack_budget(ROUNDING, rounds=True), budget.attack_budget(PLAIN, rounds=False)
    assert rounding == plain == {"gradient_attacks": 2, "steps": STEPS, "starts_scored": 2,
                                 "gradient_passes": 2 * STEPS, "masking_attacks": 0}
    with_exact = budget.attack_budget(AttackConfig(steps=STEPS, modes=("off", "bpda", "exact")), rounds=True)
    assert with_exact == {**rounding, "masking_attacks": 1}  # exact is a diagnostic, outside the budget
    assert budget.attack_budget(ROUNDING, rounds=False)["gradient_attacks"] == 1  # modes need a rounding arm
    assert budget.attack_budget(AttackConfig(modes=("off", "bpda"), restarts=3), rounds=True)["gradient_attacks"] == 6


def test_a_rounding_arm_with_two_modes_and_a_plain_arm_with_two_restarts_spend_equal_gradient_passes():
    x, y = _data()
    rounding, plain = _arm("round"), _arm("baseline")
    # early exit off: every example takes the whole budget, whatever the random net gets right
    points = {arm: attacks.evaluate(model, x, y, cfg, rounds=rounds, seed=0, ctx=attacks.Context(early_exit=False))
              for arm, model, cfg, rounds in (("rounding", rounding, ROUNDING, True), ("plain", plain, PLAIN, False))}
    per_epoch = len(EPS) * 2 * STEPS * N  # radii x gradient attacks x steps x examples
    assert rounding.gradient == plain.gradient == per_epoch  # the passes the models really made
    for arm, model in (("rounding", rounding), ("plain", plain)):
        point = points[arm]
        assert _spent(point, "attacks") == len(EPS) * point["effort"]["budget"]["gradient_attacks"] == len(EPS) * 2
        assert _spent(point, "gradient_passes") * N == model.gradient
        assert _spent(point, "forward_passes") * N + N == model.forward_  # + the clean predictions
    # Forward passes differ: `off` crafts without rounding, so each of its iterates is scored by its own pass
    spent = points["rounding"]["effort"]["spent"]["2"]
    assert spent["off"]["forward_passes"] == STEPS + 1 and spent["bpda"]["forward_passes"] == 1
    assert points["plain"]["effort"]["spent"]["2"]["pgd"]["forward_passes"] == 2  # one per restart


def test_exact_costs_one_gradient_pass_per_example_outside_the_budget():
    x, y = _data()
    model = _arm("round")
    cfg = AttackConfig(eps=EPS, steps=STEPS, modes=("off", "bpda", "exact"), n_eval=N)
    point = attacks.evaluate(model, x, y, cfg, rounds=True, seed=0, ctx=attacks.Context(early_exit=False))
    assert point["effort"]["budget"]["gradient_attacks"] == 2
    for per_mode in point["effort"]["spent"].values():
        assert per_mode["exact"] == {"attacks": 1.0, "gradient_passes": 1.0, "forward_passes": 0.0}
    assert model.gradient == len(EPS) * (2 * STEPS + 1) * N


def test_early_exit_spends_less_and_the_counter_still_counts_every_pass(trained_small_net, eps_units):
    net, x, y = trained_small_net
    x, y = x[:64], y[:64]
    model = Passes(pipelines.Deployed(pipelines.create("round", None, None, None), net)).eval()
    cfg = AttackConfig(eps=(eps_units, 2 * eps_units), steps=5, modes=("off", "bpda"), restarts=2, n_eval=64)
    point = attacks.evaluate(model, x, y, cfg, rounds=True, seed=0, ctx=attacks.Context(early_exit=True))
    assert _spent(point, "gradient_passes") * len(x) == model.gradient
    assert _spent(point, "forward_passes") * len(x) + len(x) == model.forward_
    full = len(cfg.eps) * point["effort"]["budget"]["gradient_passes"]
    assert 0 < _spent(point, "gradient_passes") < full  # wrong and fooled examples stop stepping
    assert point["adv"]["%g" % (2 * eps_units)]["strongest"] < point["clean"]  # ... and the attack fooled some


@pytest.mark.parametrize("restarts", [1, 2])
def test_every_arm_scores_the_same_random_starts(monkeypatch, restarts):
    """Gradient mode j takes starts j*restarts .. : two modes x r restarts and one mode x 2r restarts draw
    the same noises, and `exact` draws only starts already drawn."""
    drawn = []
    real = attacks.random_start
    monkeypatch.setattr(attacks, "random_start", lambda x, eps, seed: drawn.append(seed) or real(x, eps, seed))
    x, y = _data()
    seeds = {}
    for arm, modes, restarts_, rounds in (("rounding", ("off", "bpda", "exact"), restarts, True),
                                          ("plain", ("pgd",), 2 * restarts, False)):
        drawn.clear()
        cfg = AttackConfig(eps=EPS, steps=1, modes=modes, restarts=restarts_, n_eval=N)
        attacks.evaluate(_arm("round" if rounds else "baseline"), x, y, cfg, rounds=rounds, seed=4,
                         ctx=attacks.Context(early_exit=False))
        seeds[arm] = sorted(drawn)
    assert set(seeds["rounding"]) == set(seeds["plain"])
    assert len(set(seeds["plain"])) == len(EPS) * 2 * restarts  # distinct: one per gradient attack
