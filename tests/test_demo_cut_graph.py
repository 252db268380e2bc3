"""demos/cut_graph.py and demos/tiny_mlp.py run as a user runs them: the cut raises and the
reparameterized gradients are dz/dmu = 1, dz/dsigma = eps; the hand-written training loop fits."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from tinygrad_reparam import Tensor
from tinygrad_reparam.optim import Adam

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_demo(name, *arguments):
    result = subprocess.run([sys.executable, os.path.join(REPO, "demos", name), *arguments],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cut_graph_demo(tmp_path):
    metrics_path = tmp_path / "metrics.json"
    stdout = run_demo("cut_graph.py", "--quick", "--seed", "3", "--out", str(tmp_path),
                      "--metrics-json", str(metrics_path))
    metrics = json.loads(metrics_path.read_text())
    assert metrics["sample_raises"] is True
    assert metrics["dz_dmu"] == 1.0
    assert abs(metrics["dz_dsigma"] - metrics["eps"]) < 1e-12 and metrics["eps"] != 0.0
    assert "Normal.sample" in stdout and "[no gradient]" in stdout
    assert any(name.startswith("cut_rsample.") for name in os.listdir(tmp_path))


def load_demo(name):
    """Import demos/<name>.py as a module (demos/ on the path for its ``import common``)."""
    sys.path.insert(0, os.path.join(REPO, "demos"))
    try:
        spec = importlib.util.spec_from_file_location(f"{name}_demo", os.path.join(REPO, "demos", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def test_tiny_mlp_demo_loss_falls(tmp_path, assert_figure):
    metrics_path = tmp_path / "metrics.json"
    stdout = run_demo("tiny_mlp.py", "--quick", "--seed", "1", "--out", str(tmp_path),
                      "--metrics-json", str(metrics_path))
    printed = [float(line.split("loss")[1].split()[0]) for line in stdout.splitlines()
               if line.startswith("step")]
    metrics = json.loads(metrics_path.read_text())
    assert metrics["config"]["steps"] == len(metrics["losses"]) == 300 and metrics["config"]["seed"] == 1
    assert metrics["first_loss"] == metrics["losses"][0] and metrics["final_loss"] == metrics["losses"][-1]
    assert len(printed) >= 3 and printed[0] == float(f"{metrics['first_loss']:.3e}")
    assert metrics["final_loss"] < metrics["first_loss"] / 10  # about 0.1 -> 1e-4 in 300 steps
    assert_figure(tmp_path / "tiny_mlp.png", stdout, min_bytes=10_000)


def test_tiny_mlp_hand_written_adam_takes_the_package_adams_steps():
    """The demo writes Adam out by hand; from the same start it follows optim.Adam, to rounding."""
    demo = load_demo("tiny_mlp")
    rng = np.random.default_rng(0)
    x, y = demo.make_data(rng)
    by_hand = demo.init_params(rng)
    start = [p.data.copy() for p in by_hand]
    packaged = [Tensor(p.data.copy(), requires_grad=True) for p in by_hand]
    state, optimizer = demo.adam_init(by_hand), Adam(packaged, lr=0.01)
    for _ in range(50):
        for params in (by_hand, packaged):
            for p in params:
                p.grad = None
            demo.mse(demo.forward(params, x), y).backward()
        demo.adam_step(by_hand, state, lr=0.01)
        optimizer.step()
    assert max(np.abs(p.data - s).max() for p, s in zip(by_hand, start)) > 0.1  # the weights moved
    for a, b in zip(by_hand, packaged):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-12)
