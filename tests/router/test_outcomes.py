from __future__ import annotations

from pathlib import Path

import pytest

from majordome._errors import ConfigurationError
from majordome.router.outcomes import read_outcomes


def test_a_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_bytes("prompt_id,prompt,model,score\np1,hello,m,1\n".encode("utf-8-sig"))
    [outcome] = read_outcomes(path)
    assert (outcome.prompt_id, outcome.model, outcome.score) == ("p1", "m", 1.0)


def test_a_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_bytes("prompt_id,prompt,model,score\np1,café,m,1\n".encode("latin-1"))
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        read_outcomes(path)
