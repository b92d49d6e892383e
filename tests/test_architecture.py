"""The house rules the code itself can check: the core imports no tool, no function takes more than 8
parameters, and the judge, the plan and the report pages import no torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("bench", "chaos")
CORE = sorted(p for p in (ROOT / "harness").rglob("*.py") if p.relative_to(ROOT / "harness").parts[0] not in TOOLS)


def test_the_core_harness_imports_no_tool():
    """The tools (harness.bench, harness.chaos) import the core; the core imports neither."""
    for path in CORE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module or ''}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                assert name.removeprefix("harness").strip(".").split(".")[0] not in TOOLS, f"{path} imports {name}"


def test_no_function_of_the_library_takes_more_than_8_parameters():
    """Settings travel as the objects that hold them (AttackConfig and the attack's Context, RunConfig,
    Settings), not as loose parameters."""
    wide = []
    for path in CORE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
                n = len(params) - (bool(params) and params[0].arg in ("self", "cls"))
                if n > 8:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} takes {n}")
    assert len(CORE) > 40 and not wide, wide


@pytest.mark.parametrize("module", ["harness.spec.plan", "harness.judge.verdict", "harness.report.page",
                                    "harness.report.summary", "harness.report.drift"])
def test_the_plan_the_judge_and_the_report_import_no_torch(module):
    """They run where no training does (a laptop rebuilding a page from results.json): torch, and the
    seconds it takes to import, stay in the rooms that train and attack."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
