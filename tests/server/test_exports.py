from __future__ import annotations

import types

import majordome.server


def test_all_lists_every_public_member() -> None:
    module = majordome.server
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (getattr(value, "__module__", "") or "").startswith("majordome.server")
    }
    assert defined == set(module.__all__)
