"""Shared fixtures of the reference comparisons (none yet): each test module imports its library with
``pytest.importorskip(name, reason=...)`` so an absent library skips with the reason."""
