"""Shared test settings: hypothesis is derandomized (same examples every run) and has no
deadline (never a wall-clock limit in a test)."""
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
