"""Shared test settings: hypothesis is derandomized (same examples every run) and has no
deadline (never a wall-clock limit in a test). And the one place that knows whether the demos
can draw their figures: matplotlib is optional (the package's [demos] extra), so the suite must
pass with the [test] extra alone."""
import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "repo",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("repo")

# The demos run in a subprocess with the same interpreter, so they see the same packages.
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
# What demos/common.py's save_figure prints when it cannot draw.
FIGURE_SKIPPED = "matplotlib is not installed, so no figure was drawn"


@pytest.fixture
def assert_figure():
    """``assert_figure(path, stdout, min_bytes=0)``: with matplotlib, the demo wrote a figure of
    more than ``min_bytes`` bytes at ``path``; without it, the demo wrote none and said so."""
    def check(path, stdout: str, min_bytes: int = 0) -> None:
        path = Path(path)
        if HAS_MATPLOTLIB:
            assert path.is_file(), f"no figure at {path}"
            assert path.stat().st_size > min_bytes, f"{path} has only {path.stat().st_size} bytes"
        else:
            assert FIGURE_SKIPPED in stdout, "the demo did not say that it skipped its figure"
            assert not path.exists()
    return check
