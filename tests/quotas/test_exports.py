"""``majordome.quotas.__all__`` names every public class of the package, and nothing else."""

from __future__ import annotations

import inspect

import majordome.quotas as quotas
from majordome.quotas import _ratelimit, _throttle


def test_all_is_complete() -> None:
    public = {
        name
        for module in (_throttle, _ratelimit)
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    }
    assert set(quotas.__all__) == public
    assert all(hasattr(quotas, name) for name in quotas.__all__)
