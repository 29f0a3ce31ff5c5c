"""The README's Python examples run as written (on the embedded defaults: the local model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.DOTALL)


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.local_model
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("MAJORDOME_", "AZURE_")):
            monkeypatch.delenv(name)
    if "majordome.bench" in BLOCKS[index]:
        from majordome._errors import ConfigurationError
        from majordome.bench.readers import data_dir

        try:
            data_dir()
        except ConfigurationError as exc:
            pytest.skip(f"the benchmark example needs the public datasets: {exc}")
    exec(compile(BLOCKS[index], f"README.md example {index + 1}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip() or index == len(BLOCKS) - 1
