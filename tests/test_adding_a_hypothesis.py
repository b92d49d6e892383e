"""The README's "Adding a hypothesis" example is one file and needs no harness edit: this test takes the
example from the README itself, collects it as pytest would, and builds both arms."""
import re
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent


def example() -> str:
    section = ROOT.joinpath("README.md").read_text().split("## Adding a hypothesis", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_collects_and_builds_a_relu_vit(tmp_path, real_dataset):
    module = tmp_path / "test_relu_vit.py"
    module.write_text(example())
    proc = subprocess.run([sys.executable, "-m", "pytest", str(module), "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-p", "harness.plugin", f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), f"--reports-dir={tmp_path / 'r'}",
                           f"--cache-dir={tmp_path / 'c'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test_relu_improves_vit_tradeoff[" in proc.stdout and "-eps1]" in proc.stdout

    from harness.spec import plan
    from harness.run import train
    from harness.spec.config import PROFILES
    namespace: dict = {}
    exec(compile(example(), str(module), "exec"), namespace)
    claim = namespace["CLAIM"]
    p = plan.Plan(claim, PROFILES["smoke"], ("x",), claim.eps)
    configs = plan.run_configs(p, "x", "fp32")
    nets = {arm: train.build(cfgs[0], real_dataset, torch.device("cpu"))[1] for arm, cfgs in configs.items()}
    assert isinstance(nets["ReLU"].blocks[0].mlp.act, nn.ReLU)
    assert isinstance(nets["GELU"].blocks[0].mlp.act, nn.GELU)
