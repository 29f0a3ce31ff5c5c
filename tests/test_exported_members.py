from __future__ import annotations

import types

import majordome
import majordome.testing


def own_public_names(module: types.ModuleType, *, besides: str = "") -> set[str]:
    """Public names the module (or its private submodules) defines; re-imports from other
    public modules (``besides``) need not be exported again."""
    names = set()
    for name, value in vars(module).items():
        origin = getattr(value, "__module__", "") or ""
        if name.startswith("_") or isinstance(value, types.ModuleType) or not origin.startswith(module.__name__):
            continue
        if besides and origin.startswith(besides):
            continue
        names.add(name)
    return names


def test_all_lists_every_public_member_and_nothing_else() -> None:
    for module in (majordome, majordome.testing):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
        assert len(module.__all__) == len(set(module.__all__))
    assert own_public_names(majordome, besides="majordome.testing") == set(majordome.__all__) - {
        "__version__",
        "StreamEvent",
    }
    assert own_public_names(majordome.testing) == set(majordome.testing.__all__)
    # The type alias has no __module__: checked by name.
    assert "StreamEvent" in majordome.__all__


def test_every_error_is_exported_and_derives_from_the_base() -> None:
    errors = {
        name
        for name in majordome.__all__
        if name.endswith(("Error", "Exceeded", "Failed", "Limited", "Interrupted", "Timeout"))
    }
    assert len(errors) >= 15
    for name in errors:
        assert issubclass(getattr(majordome, name), majordome.MajordomeError), name
