"""demos/cut_graph.py and demos/tiny_mlp.py run as a user runs them, and show what they claim."""
import json
import os
import subprocess
import sys

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


def test_tiny_mlp_demo_loss_falls():
    stdout = run_demo("tiny_mlp.py", "--quick", "--seed", "1")
    losses = [float(line.split("loss")[1].split()[0]) for line in stdout.splitlines()
              if line.startswith("step")]
    assert len(losses) >= 3 and losses[-1] < losses[0] / 10
