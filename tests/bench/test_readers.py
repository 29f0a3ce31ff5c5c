"""The benchmark readers on tiny fixtures shaped like the real files (tests/bench/fixtures).

Each good fixture is read through :func:`load_dataset` with ``data=`` the fixtures folder; each
malformed or messy variant is a copy edited in ``tmp_path``. One optional test reads the real
RouterBench split from ``../shared/datasets`` and is skipped when that folder is absent.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from majordome._errors import ConfigurationError
from majordome.bench import readers
from majordome.bench.dataset import Dataset
from majordome.bench.readers import (
    DATA_DIR_ENV,
    DATASETS,
    check_leakage,
    data_dir,
    estimate_input_tokens,
    load_dataset,
    read_long_outcomes,
    read_routellm_gsm8k,
    read_routellm_mmlu,
    read_routellm_mt_bench,
    read_routerbench,
    read_zeroeval_gsm8k,
)
from majordome.models.tokens import count_tokens

FIXTURES = Path(__file__).parent / "fixtures"
REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets"

W, G35, G4 = "WizardLM/WizardLM-13B-V1.2", "gpt-3.5-turbo-1106", "gpt-4-1106-preview"
MIX = "mistralai/Mixtral-8x7B-Instruct-v0.1"
NAN = math.nan


# -- helpers -----------------------------------------------------------------------------------


def copy_fixture(tmp_path: Path, folder: str) -> Path:
    """A writable copy of ``fixtures/<folder>`` under ``tmp_path`` (same relative path)."""
    target = tmp_path / folder
    shutil.copytree(FIXTURES / folder, target)
    return target


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def write_table(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def edit_table(path: Path, row: int, column: str, value: str) -> None:
    """Set one cell (``row`` 1-based, as the readers count) of a CSV file."""
    header, rows = read_table(path)
    rows[row - 1][column] = value
    write_table(path, header, rows)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def write_lines(path: Path, items: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), "utf-8")


def routerbench_copy(tmp_path: Path) -> tuple[Path, Path]:
    folder = copy_fixture(tmp_path, "routerbench")
    return folder / "arc_challenge_train.csv", folder / "arc_challenge_test.csv"


def nan_equal(actual: np.ndarray | None, expected: Sequence[Sequence[float]]) -> None:
    assert actual is not None
    np.testing.assert_array_equal(actual, np.array(expected, dtype=float))


# -- RouterBench -------------------------------------------------------------------------------


def test_routerbench_train_merges_complementary_halves_and_drops_incomplete_rows() -> None:
    ds = load_dataset("routerbench/arc_challenge", split="train", data=FIXTURES)

    assert ds.name == "routerbench/arc_challenge/train"
    assert ds.prompt_ids == ["arc-challenge.test.1108", "arc-challenge.test.42", "arc-challenge.val.208"]
    assert ds.models == [W, G35, G4]  # order of the score columns, not of the cost columns
    assert ds.prompts == [
        "Which skin surface will produce the most heat when rubbed?\nA) dry palms\nB) wet palms\nAnswer:",
        "Which gas do plants absorb?\nA) oxygen\nB) carbon dioxide\nAnswer:",
        "What melts ice fastest?\nA) salt\nB) sand\nAnswer:",  # of the half with more scores
    ]
    # arc-challenge.val.208: gpt-3.5 from the half carrying it alone, the others from the other half.
    nan_equal(ds.scores, [[1, 0, 1], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_allclose(
        ds.cost_usd, [[0.0001428, 0.000477, 0.00478], [0.0001, 0.0005, 0.005], [0.0001428, 0.000952, 0.00478]]
    )
    assert ds.groups == ["arc-challenge"] * 3
    assert ds.input_tokens is None
    tokens = [[1, 1, 1], [1, 1, count_tokens("The answer is B.\nB")], [1, 1, 1]]
    assert count_tokens("The answer is B.\nB") > 1
    nan_equal(ds.output_tokens, tokens)
    assert len(ds.problems) == 4
    merged, missing, repeated, leakage = ds.problems
    assert merged.startswith("duplicate sample_ids: 1 sample_ids") and "merged" in merged
    assert merged.endswith(": arc-challenge.val.208")
    assert missing.startswith("missing scores: 1 rows lack scores (1 without gpt-3.5-turbo-1106)")
    assert missing.endswith("dropped: arc-challenge.val.26")
    assert repeated.startswith("repeated prompt: 1 rows")
    assert leakage.startswith("split leakage: 1 sample_ids also occur in arc_challenge_test.csv (arc-challenge.val.26)")
    assert "1 of them are complementary halves" in leakage and "0 remain in this dataset" in leakage


def test_routerbench_test_split_reports_the_ids_it_shares_with_train() -> None:
    ds = load_dataset("routerbench/arc_challenge", split="test", data=FIXTURES)

    assert ds.name == "routerbench/arc_challenge/test"
    assert ds.prompt_ids == ["arc-challenge.test.7"]
    nan_equal(ds.scores, [[1, 1, 1]])
    assert ds.problems[0].startswith("missing scores: 1 rows lack scores (1 without 2 of 3 models)")
    assert ds.problems[-1].startswith("split leakage: 1 sample_ids also occur in arc_challenge_train.csv")
    assert not any("prompt texts" in p for p in ds.problems)  # the halves' prompts differ, as upstream


def test_routerbench_without_the_other_split_file_reports_no_leakage(tmp_path: Path) -> None:
    _, test = routerbench_copy(tmp_path)
    test.unlink()
    ds = load_dataset("routerbench/arc_challenge", split="train", data=tmp_path)
    assert ds.size == 3
    assert not any(p.startswith("split leakage") for p in ds.problems)


def test_routerbench_duplicates_with_overlapping_models_are_all_dropped(tmp_path: Path) -> None:
    train, _ = routerbench_copy(tmp_path)
    header, rows = read_table(train)
    rows.append({**rows[1], "": "9000", G4: "0.0"})  # arc-challenge.test.42 again, disagreeing
    write_table(train, header, rows)

    ds = read_routerbench(train)

    assert ds.name == "arc_challenge_train"
    assert ds.prompt_ids == ["arc-challenge.test.1108", "arc-challenge.val.208"]
    conflict = [p for p in ds.problems if "overlapping models" in p]
    assert conflict == [
        "duplicate sample_ids: 1 sample_ids occur on 2 rows with overlapping models; "
        "all those rows dropped: arc-challenge.test.42"
    ]


def test_routerbench_halves_with_different_eval_names_are_not_merged(tmp_path: Path) -> None:
    train, _ = routerbench_copy(tmp_path)
    edit_table(train, 3, "eval_name", "mmlu")  # the first half of arc-challenge.val.208
    ds = read_routerbench(train)
    assert "arc-challenge.val.208" not in ds.prompt_ids
    assert any("overlapping models" in p and "arc-challenge.val.208" in p for p in ds.problems)


def test_routerbench_prompt_texts_shared_with_the_other_split_are_reported(tmp_path: Path) -> None:
    train, test = routerbench_copy(tmp_path)
    _, rows = read_table(train)
    edit_table(test, 1, "prompt", rows[1]["prompt"])
    ds = read_routerbench(train, other_split=test)
    assert "split leakage: 1 prompt texts also occur in arc_challenge_test.csv" in ds.problems


def test_routerbench_oracle_column_disagreeing_with_the_scores_is_reported(tmp_path: Path) -> None:
    train, _ = routerbench_copy(tmp_path)
    edit_table(train, 2, "oracle_model_to_route_to", G4)  # gpt-3.5 is cheaper and also correct
    ds = read_routerbench(train)
    assert any(p.startswith("oracle column: on 1 rows") for p in ds.problems)


def test_routerbench_missing_cost_is_left_nan_and_reported(tmp_path: Path) -> None:
    train, _ = routerbench_copy(tmp_path)
    edit_table(train, 1, f"{G4}|total_cost", "")
    ds = read_routerbench(train)
    assert math.isnan(ds.cost_usd[0, 2])
    assert "missing costs: 1 calls have no total_cost (left NaN)" in ds.problems


def test_routerbench_without_response_columns_has_no_token_counts(tmp_path: Path) -> None:
    train, _ = routerbench_copy(tmp_path)
    header, rows = read_table(train)
    header = [c for c in header if not c.endswith("|model_response")]
    write_table(train, header, [{c: r[c] for c in header} for r in rows])
    ds = read_routerbench(train)
    assert ds.output_tokens is None
    assert ds.size == 3


def test_routerbench_file_with_only_incomplete_rows_is_an_error(tmp_path: Path) -> None:
    _, test = routerbench_copy(tmp_path)
    header, rows = read_table(test)
    write_table(test, header, rows[1:])
    with pytest.raises(ConfigurationError, match="no complete rows left"):
        read_routerbench(test)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (G4, "abc", "row 2 (line 3), column 'gpt-4-1106-preview': score 'abc' is not a number [0, 1]"),
        (G4, "1.5", "row 2 (line 3), column 'gpt-4-1106-preview': score '1.5' is not a number [0, 1]"),
        (f"{G4}|total_cost", "-1", "row 2 (line 3), column 'gpt-4-1106-preview|total_cost': cost '-1'"),
        ("prompt", "Which gas do plants absorb?", "row 2 (line 3), column 'prompt': not a Python list literal"),
        ("prompt", "'Which gas?'", "row 2 (line 3), column 'prompt': expected a list of strings, got str"),
        ("prompt", "[1, 2]", "row 2 (line 3), column 'prompt': expected a list of strings, got list"),
        ("prompt", "{[]}", "row 2 (line 3), column 'prompt': not a Python list literal"),
        ("prompt", "[]", "row 2 (line 3), column 'prompt': empty prompt list"),
        (f"{G4}|model_response", "B", "row 2 (line 3), column 'gpt-4-1106-preview|model_response'"),
        ("sample_id", " ", "row 2 (line 3), column 'sample_id': expected a non-empty string"),
    ],
)
def test_routerbench_bad_cell_names_file_row_and_column(tmp_path: Path, column: str, value: str, expected: str) -> None:
    train, _ = routerbench_copy(tmp_path)
    edit_table(train, 2, column, value)
    with pytest.raises(ConfigurationError) as error:
        read_routerbench(train)
    assert str(error.value).startswith(f"{train}, ")
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("rename", "expected"),
    [
        ((f"{G4}|model_response", f"{G4}|latency"), "column 'gpt-4-1106-preview|latency'"),
        ((f"{G4}|model_response", "gpt-5|model_response"), "column 'gpt-5|model_response'"),
        (("eval_name", "benchmark"), "missing column(s) ['eval_name']"),
        ((f"{G4}|total_cost", None), "missing column(s) ['gpt-4-1106-preview|total_cost']"),
    ],
)
def test_routerbench_bad_header_names_file_and_column(
    tmp_path: Path, rename: tuple[str, str | None], expected: str
) -> None:
    train, _ = routerbench_copy(tmp_path)
    header, rows = read_table(train)
    old, new = rename
    header = [c for c in header if c != old] + ([] if new is None else [new])
    write_table(train, header, [{c: row.get(old if c == new else c, "") for c in header} for row in rows])
    with pytest.raises(ConfigurationError) as error:
        read_routerbench(train)
    assert str(error.value).startswith(f"{train}: ")
    assert expected in str(error.value)


def test_routerbench_row_with_wrong_field_count_is_an_error(tmp_path: Path) -> None:
    train, _ = routerbench_copy(tmp_path)
    lines = train.read_text("utf-8").splitlines()
    lines[2] += ",extra"
    train.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(ConfigurationError, match=r"row 2 \(line 3\): 15 fields, the header has 14") as error:
        read_routerbench(train)
    assert str(train) in str(error.value)


def test_routerbench_empty_and_header_only_files_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", "utf-8")
    with pytest.raises(ConfigurationError, match="empty file"):
        read_routerbench(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(FIXTURES.joinpath("routerbench/arc_challenge_train.csv").read_text().split("\n")[0] + "\n")
    with pytest.raises(ConfigurationError, match="no data rows") as error:
        read_routerbench(header_only)
    assert str(header_only) in str(error.value)


def test_routerbench_pickle_without_pandas_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails, installed or not
    path = tmp_path / "arc_challenge_train.pkl"
    path.write_bytes(b"not read")
    with pytest.raises(ConfigurationError, match="needs pandas") as error:
        read_routerbench(path)
    assert str(path) in str(error.value)


def test_non_utf8_file_is_a_configuration_error(tmp_path: Path) -> None:
    train, _ = routerbench_copy(tmp_path)
    train.write_bytes(train.read_bytes().replace(b"wet palms", b"caf\xe9 palms"))
    with pytest.raises(ConfigurationError, match="not valid UTF-8") as error:
        read_routerbench(train)
    assert str(train) in str(error.value)
    folder = copy_fixture(tmp_path, "routellm/mt_bench")
    (folder / "question.jsonl").write_bytes(b'{"question_id": 81, "category": "caf\xe9"}\n')
    with pytest.raises(ConfigurationError, match="not valid UTF-8") as error:
        read_routellm_mt_bench(folder)
    assert str(folder / "question.jsonl") in str(error.value)


# -- RouteLLM MMLU -----------------------------------------------------------------------------


def test_mmlu_concatenates_subjects_removes_contaminated_prompts_and_reports_duplicates() -> None:
    ds = load_dataset("routellm/mmlu", data=FIXTURES)

    assert ds.name == "routellm/mmlu"
    assert ds.prompt_ids == ["mmlu/anatomy/0", "mmlu/anatomy/2", "mmlu/astronomy/0", "mmlu/astronomy/1"]
    assert ds.models == [MIX, G4]  # the first file's order; astronomy lists them the other way round
    nan_equal(ds.scores, [[1, 1], [1, 0], [0, 1], [1, 1]])
    assert ds.groups == ["anatomy", "anatomy", "astronomy", "astronomy"]
    assert ds.prompts[2] == "Why is Mars red?\nA. iron oxide\nB. ice\nAnswer:"
    assert ds.prompts[1] == ds.prompts[3]  # a repeated text, kept under both ids
    assert np.isnan(ds.cost_usd).all() and ds.cost_usd.shape == (4, 2)
    assert ds.input_tokens is None and ds.output_tokens is None
    assert ds.problems == [
        "duplicate prompts: 1 rows repeat a prompt text that occurs earlier (1 distinct texts, 1 of them with "
        "different scores on their copies); kept, each under its own prompt id",
        "contamination: 1 rows removed whose prompt is in mmlu_contaminated_prompts.jsonl (2 listed, exact match); "
        "1 listed prompts match no row",
    ]


def test_mmlu_without_decontamination_keeps_every_row() -> None:
    ds = read_routellm_mmlu(FIXTURES / "routellm/mmlu", decontaminate=False)
    assert ds.size == 5
    assert ds.prompt_ids[1] == "mmlu/anatomy/1"
    nan_equal(ds.scores[1:2], [[0, 1]])
    assert not any(p.startswith("contamination") for p in ds.problems)


def test_mmlu_bad_bool_names_file_row_line_and_column(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "routellm/mmlu")
    path = folder / "responses/mmlu_anatomy.csv"
    edit_table(path, 3, G4, "yes")
    with pytest.raises(ConfigurationError) as error:
        read_routellm_mmlu(folder)
    # Rows 1 and 2 hold four-line prompts: row 3 starts on line 10.
    assert str(error.value) == f"{path}, row 3 (line 10), column '{G4}': 'yes' is not a boolean (True/False)"


def test_mmlu_subject_with_other_models_is_an_error(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "routellm/mmlu")
    path = folder / "responses/mmlu_astronomy.csv"
    path.write_text(path.read_text("utf-8").replace(G4, "gpt-4o", 1), "utf-8")
    with pytest.raises(ConfigurationError, match="differ from") as error:
        read_routellm_mmlu(folder)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"question,{MIX},{G4}", "missing column(s) ['prompt']"),
        ("prompt", "no model columns besides 'prompt'"),
        (f"prompt,{MIX},{G4}_response", "response column(s) ['gpt-4-1106-preview_response'] have no correctness"),
        (f"prompt,{MIX},{G4}", "no data rows"),
    ],
)
def test_routellm_bad_header_is_an_error(tmp_path: Path, header: str, expected: str) -> None:
    folder = copy_fixture(tmp_path, "routellm/mmlu")
    path = folder / "responses/mmlu_anatomy.csv"
    row = ",".join(["What?", *["True"] * header.count(",")])
    path.write_text(header + ("\n" if expected == "no data rows" else f"\n{row}\n"), "utf-8")
    with pytest.raises(ConfigurationError) as error:
        read_routellm_mmlu(folder)
    assert str(error.value).startswith(f"{path}: ")
    assert expected in str(error.value)


def test_mmlu_without_subject_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "responses").mkdir()
    with pytest.raises(ConfigurationError, match=re.escape("no mmlu_<subject>.csv files")):
        read_routellm_mmlu(tmp_path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "no contaminated prompts listed"),
        ('{"train_prompt": "x"}\n', "(line 1): missing column 'eval_prompt'"),
        ('{"eval_prompt": "x"}\n{"eval_prompt": 3}\n', "(line 2), column 'eval_prompt': expected a non-empty string"),
        ('{"eval_prompt": "x"}\nnot json\n', "line 2: not JSON"),
        ('["eval_prompt", "x"]\n', "line 1: not a JSON object"),
    ],
)
def test_bad_contaminated_prompts_file_is_an_error(tmp_path: Path, content: str, expected: str) -> None:
    folder = copy_fixture(tmp_path, "routellm/mmlu")
    path = folder / "mmlu_contaminated_prompts.jsonl"
    path.write_text(content, "utf-8")
    with pytest.raises(ConfigurationError) as error:
        read_routellm_mmlu(folder)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


# -- RouteLLM GSM8K ----------------------------------------------------------------------------


def test_gsm8k_reads_scores_and_response_lengths_and_removes_contaminated_prompts() -> None:
    ds = load_dataset("routellm/gsm8k", data=FIXTURES)

    assert ds.name == "routellm/gsm8k"
    assert ds.prompt_ids == ["gsm8k/0", "gsm8k/2"]
    assert ds.models == [MIX, G4]
    assert ds.prompts[1] == "Josh buys a house for $80,000 and sells it for $200,000. What is his profit?"
    nan_equal(ds.scores, [[1, 1], [1, 0]])
    responses = [
        [
            " Janet starts with 16 eggs.\nShe eats 3, so 16 - 3 = 13 are left.\nThe answer is 13.",
            "16 - 3 = 13. The answer is 13.",
        ],
        [" 200,000 - 80,000 = 120,000", "The profit is $70,000."],
    ]
    nan_equal(ds.output_tokens, [[count_tokens(r) for r in row] for row in responses])
    assert ds.input_tokens is None and ds.groups is None
    assert np.isnan(ds.cost_usd).all()
    assert ds.problems == [
        "contamination: 1 rows removed whose prompt is in gsm8k_contaminated_prompts.jsonl (1 listed, exact match)"
    ]


def test_gsm8k_repeated_prompt_text_is_reported(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "routellm/gsm8k")
    path = folder / "gsm8k_responses.csv"
    _, rows = read_table(path)
    edit_table(path, 3, "prompt", rows[0]["prompt"])
    ds = read_routellm_gsm8k(folder)
    assert ds.size == 2
    assert ds.problems[0].startswith("duplicate prompts: 1 rows repeat a prompt text that occurs earlier")
    assert "1 of them with different scores" in ds.problems[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", ": empty file, expected a header row"),
        (f"prompt,{MIX},{G4}\n", ": no data rows"),
        (f"prompt,{MIX},{G4}\nA question?,True,False\nAnother?,True\n", ", row 2 (line 3): 2 fields, the header has 3"),
        (f"prompt,{MIX},{G4}\nA question?,True,Maybe\n", ", row 1 (line 2), column 'gpt-4-1106-preview': 'Maybe'"),
        (f"prompt,{MIX},{G4}\n,True,False\n", ", row 1 (line 2), column 'prompt': expected a non-empty string"),
        (f"prompt,{MIX},{MIX}\nA question?,True,False\n", ": duplicated column(s)"),
    ],
)
def test_gsm8k_malformed_csv_is_an_error(tmp_path: Path, content: str, expected: str) -> None:
    folder = copy_fixture(tmp_path, "routellm/gsm8k")
    path = folder / "gsm8k_responses.csv"
    path.write_text(content, "utf-8")
    with pytest.raises(ConfigurationError) as error:
        read_routellm_gsm8k(folder)
    assert str(error.value).startswith(f"{path}{expected}")


# -- RouteLLM MT-Bench -------------------------------------------------------------------------


def test_mt_bench_reads_one_prompt_per_turn_with_scores_over_ten() -> None:
    ds = load_dataset("routellm/mt_bench", data=FIXTURES)

    assert ds.name == "routellm/mt_bench"
    # Question 111 has a turn in the contaminated list: both its turns go.
    assert ds.prompt_ids == ["mt_bench/81/1", "mt_bench/81/2", "mt_bench/131/1", "mt_bench/131/2"]
    assert ds.models == [G4, MIX]  # order of first appearance in judgements.jsonl
    assert ds.prompts[:2] == [
        "Write a haiku about Hawaii.",
        "Write a haiku about Hawaii.\n\nRewrite it starting every line with A.",
    ]
    np.testing.assert_allclose(ds.scores, [[0.9, 0.7], [0.8, 0.5], [0.9, 0.65], [1.0, 0.4]])
    assert ds.groups == ["writing", "writing", "extraction", "extraction"]
    assert np.isnan(ds.cost_usd).all()
    assert ds.problems == [
        "contamination: 1 questions (2 prompts) removed, a turn of each being in "
        "mt_bench_contaminated_prompts.jsonl (1 listed, exact match)"
    ]


def test_mt_bench_token_counts_come_from_the_answers_quoted_to_the_judge() -> None:
    ds = read_routellm_mt_bench(FIXTURES / "routellm/mt_bench", decontaminate=False)

    assert ds.size == 6 and ds.prompt_ids[2:4] == ["mt_bench/111/1", "mt_bench/111/2"]
    assert ds.problems == []
    first, second = "What is 2 + 2?", "And 3 + 3?"
    # gpt-4 answered "4" then "6"; Mixtral "2 + 2 = 4" then "3 + 3 = 7".
    nan_equal(ds.output_tokens[2:4] if ds.output_tokens is not None else None, [[1, 7], [1, 7]])
    assert ds.input_tokens is not None
    assert ds.input_tokens[2, 0] == count_tokens(first) + 4
    # Turn 2: turn 1, the model's first answer and turn 2, each framed as a message.
    assert ds.input_tokens[3, 0] == count_tokens(first) + count_tokens("4") + count_tokens(second) + 12
    assert ds.input_tokens[3, 1] == count_tokens(first) + count_tokens("2 + 2 = 4") + count_tokens(second) + 12


def test_mt_bench_reports_duplicate_failed_unknown_missing_and_unreadable_judgements(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "routellm/mt_bench")
    path = folder / "judgements.jsonl"
    lines = read_lines(path)
    # lines: per question 81, 111, 131: gpt-4 turn 1, gpt-4 turn 2, Mixtral turn 1, Mixtral turn 2
    lines.append({**lines[0], "score": 7})  # 81/1 gpt-4 judged again: mean of 9 and 7
    lines[2]["score"] = -1  # 81/1 Mixtral: FastChat could not parse the rating
    lines[1]["user_prompt"] = "a judge prompt in another template"  # 81/2 gpt-4: tokens unknown
    lines.append({**lines[4], "question_id": 999})  # no such question
    del lines[11]  # 131/2 Mixtral: never judged
    write_lines(path, lines)

    ds = read_routellm_mt_bench(folder, decontaminate=False)

    assert ds.scores[0, 0] == pytest.approx(0.8)
    assert math.isnan(ds.scores[0, 1]) and math.isnan(ds.scores[5, 1])
    assert ds.output_tokens is not None and ds.input_tokens is not None
    assert math.isnan(ds.output_tokens[1, 0]) and math.isnan(ds.input_tokens[1, 0])
    assert ds.scores[1, 0] == pytest.approx(0.8)  # the score is kept when the tokens are unreadable
    assert ds.problems == [
        "duplicate judgements: 1 (question, turn, model) cells judged twice; averaged",
        "unknown questions: judgements of 1 question ids not in question.jsonl ignored",
        "failed judgements: 1 judgements with score -1 left missing",
        "missing judgements: 2 (question, turn, model) cells have no score (NaN)",
        "token counts: 1 judge prompts do not quote the answer as expected (NaN tokens)",
    ]


@pytest.mark.parametrize(
    ("line", "change", "expected"),
    [
        (3, {"score": 11}, "(line 3), column 'score': judge score 11 is not a number [1, 10]"),
        (3, {"score": "abc"}, "(line 3), column 'score': judge score 'abc' is not a number [1, 10]"),
        (3, {"score": None}, "(line 3), column 'score': missing judge score"),
        (3, {"turn": 3}, "(line 3), column 'turn': expected 1 or 2, got 3"),
        (3, {"model": ""}, "(line 3), column 'model': expected a non-empty string"),
    ],
)
def test_mt_bench_bad_judgement_names_file_line_and_field(
    tmp_path: Path, line: int, change: dict[str, Any], expected: str
) -> None:
    folder = copy_fixture(tmp_path, "routellm/mt_bench")
    path = folder / "judgements.jsonl"
    lines = read_lines(path)
    lines[line - 1].update(change)
    write_lines(path, lines)
    with pytest.raises(ConfigurationError) as error:
        read_routellm_mt_bench(folder)
    assert str(error.value).startswith(f"{path}, row {line} (line {line})")
    assert expected in str(error.value)


def test_mt_bench_judgement_without_turn_and_non_json_line_are_errors(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "routellm/mt_bench")
    path = folder / "judgements.jsonl"
    lines = path.read_text("utf-8").splitlines()
    path.write_text("\n".join([*lines[:2], "{not json", *lines[2:]]) + "\n", "utf-8")
    with pytest.raises(ConfigurationError, match="line 3: not JSON") as error:
        read_routellm_mt_bench(folder)
    assert str(path) in str(error.value)
    items = read_lines(FIXTURES / "routellm/mt_bench/judgements.jsonl")
    del items[1]["turn"]
    write_lines(path, items)
    with pytest.raises(ConfigurationError, match=r"row 2 \(line 2\): missing column 'turn'"):
        read_routellm_mt_bench(folder)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"turns": ["only one"]}, "(line 2), column 'turns': expected a list of two strings"),
        ({"turns": ["one", ""]}, "(line 2), column 'turns': expected a non-empty string"),
        ({"question_id": "111"}, "(line 2), column 'question_id': expected an integer, got '111'"),
        ({"question_id": 81}, "(line 2), column 'question_id': question 81 appears twice"),
        ({"category": None}, "(line 2), column 'category': expected a non-empty string"),
    ],
)
def test_mt_bench_bad_question_is_an_error(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    folder = copy_fixture(tmp_path, "routellm/mt_bench")
    path = folder / "question.jsonl"
    lines = read_lines(path)
    lines[1].update(change)
    write_lines(path, lines)
    with pytest.raises(ConfigurationError) as error:
        read_routellm_mt_bench(folder)
    assert str(error.value).startswith(f"{path}, row 2 ")
    assert expected in str(error.value)


def test_mt_bench_empty_files_are_errors(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "routellm/mt_bench")
    (folder / "judgements.jsonl").write_text("", "utf-8")
    with pytest.raises(ConfigurationError, match=re.escape("judgements.jsonl: no judgements")):
        read_routellm_mt_bench(folder)
    (folder / "question.jsonl").write_text("\n", "utf-8")
    with pytest.raises(ConfigurationError, match=re.escape("question.jsonl: no questions")):
        read_routellm_mt_bench(folder)


# -- ZeroEval GSM8K ----------------------------------------------------------------------------

ZE_PROMPTS = [
    "Janet's ducks lay 16 eggs per day. She eats three. How many are left?",
    "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total?",
    "Josh buys a house for $80,000 and sells it for $200,000. What is his profit?",
]


def test_zeroeval_reads_scores_output_tokens_and_estimates_input_tokens() -> None:
    ds = load_dataset("zeroeval/gsm8k", data=FIXTURES)

    assert ds.name == "zeroeval/gsm8k"
    assert ds.prompt_ids == ["gsm8k-main-test-#0", "gsm8k-main-test-#1", "gsm8k-main-test-#2"]
    assert ds.prompts == ZE_PROMPTS
    assert ds.models == ["Mistral-Large-2", "gemma-2-2b-it"]
    nan_equal(ds.scores, [[1, 0], [1, 1], [0, 0]])
    nan_equal(ds.output_tokens, [[126, 80], [95, 60], [140, 200]])
    nan_equal(ds.input_tokens, [[count_tokens(p) + 4] * 2 for p in ZE_PROMPTS])
    assert estimate_input_tokens(ZE_PROMPTS[0]) == count_tokens(ZE_PROMPTS[0]) + 4
    assert np.isnan(ds.cost_usd).all() and ds.groups is None
    assert ds.problems == []


def test_zeroeval_reports_unknown_ids_unused_prompts_missing_cells_and_repeated_texts(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "zeroeval_gsm8k")
    prompts = read_lines(folder / "prompts.jsonl")
    prompts.append({"prompt_id": "gsm8k-main-test-#3", "prompt": "Never answered?", "gold": "1"})
    prompts[1]["prompt"] = prompts[0]["prompt"]
    write_lines(folder / "prompts.jsonl", prompts)
    header, rows = read_table(folder / "outcomes.csv")
    rows.append({**rows[0], "prompt_id": "gsm8k-main-test-#99"})
    rows.append({**rows[1], "score": "1"})  # #0 gemma scored twice: 0 and 1
    del rows[5]  # #2 gemma
    write_table(folder / "outcomes.csv", header, rows)

    ds = read_zeroeval_gsm8k(folder)

    assert ds.size == 3
    assert ds.scores[0, 1] == 0.5
    assert math.isnan(ds.scores[2, 1])
    assert ds.problems == [
        "duplicate rows: 1 (prompt, model) cells recorded more than once; averaged",
        "missing outcomes: 1 of 6 (prompt, model) cells have no score (NaN)",
        "unknown prompts: outcomes of 1 prompt ids not in prompts.jsonl ignored",
        "prompts without outcomes: 1 prompts of prompts.jsonl have none; left out",
        "duplicate prompts: 1 rows repeat a prompt text that occurs earlier (1 distinct texts, 1 of them with "
        "different scores on their copies); kept, each under its own prompt id",
    ]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("score", "abc", "row 2 (line 3), column 'score': score 'abc' is not a number [0, 1]"),
        ("score", "2", "row 2 (line 3), column 'score': score '2' is not a number [0, 1]"),
        ("score", "0.5", "row 2 (line 3), column 'score': score '0.5' is not 0 or 1"),
        ("output_tokens", "-3", "row 2 (line 3), column 'output_tokens': token count '-3'"),
        ("model", "", "row 2 (line 3), column 'model': expected a non-empty string"),
    ],
)
def test_zeroeval_bad_outcome_names_file_row_and_column(tmp_path: Path, column: str, value: str, expected: str) -> None:
    folder = copy_fixture(tmp_path, "zeroeval_gsm8k")
    edit_table(folder / "outcomes.csv", 2, column, value)
    with pytest.raises(ConfigurationError) as error:
        read_zeroeval_gsm8k(folder)
    assert str(error.value).startswith(f"{folder / 'outcomes.csv'}, ")
    assert expected in str(error.value)


def test_zeroeval_missing_column_and_repeated_prompt_id_are_errors(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "zeroeval_gsm8k")
    (folder / "outcomes.csv").write_text("prompt_id,model,output_tokens\ngsm8k-main-test-#0,m,3\n", "utf-8")
    with pytest.raises(ConfigurationError, match=r"outcomes.csv: missing column\(s\) \['score'\]"):
        read_zeroeval_gsm8k(folder)
    prompts = read_lines(folder / "prompts.jsonl")
    write_lines(folder / "prompts.jsonl", [*prompts, prompts[0]])
    with pytest.raises(
        ConfigurationError, match=r"prompts.jsonl, row 4 \(line 4\), column 'prompt_id': .* appears twice"
    ):
        read_zeroeval_gsm8k(folder)


def test_zeroeval_without_any_matching_outcome_is_an_error(tmp_path: Path) -> None:
    folder = copy_fixture(tmp_path, "zeroeval_gsm8k")
    (folder / "prompts.jsonl").write_text('{"prompt_id": "other", "prompt": "Who?"}\n', "utf-8")
    with pytest.raises(ConfigurationError, match=re.escape("no outcomes for the prompts of prompts.jsonl")):
        read_zeroeval_gsm8k(folder)


# -- long outcomes files -----------------------------------------------------------------------

LONG_HEADER = "prompt_id,prompt,model,score,input_tokens,output_tokens,cost_usd,intent\n"


def test_long_outcomes_file_by_path() -> None:
    path = FIXTURES / "outcomes_long.csv"
    ds = load_dataset(str(path))

    assert ds.name == "outcomes_long"
    assert ds.prompt_ids == ["p1", "p2"]
    assert ds.prompts == ["Summarise this report.", "Translate 'bonjour'."]
    assert ds.models == ["deepseek-v3", "phi-4-mini"]  # order of first appearance
    nan_equal(ds.scores, [[0.8, 0.5], [1.0, 1.0]])
    nan_equal(ds.cost_usd, [[0.0015, NAN], [NAN, 0.000002]])
    nan_equal(ds.input_tokens, [[120, 120], [15, 15]])
    nan_equal(ds.output_tokens, [[300, 250], [6, 5]])
    assert ds.groups == ["summarise", "translate"]
    assert ds.problems == []


def test_long_outcomes_duplicates_are_averaged_and_missing_cells_reported(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    rows = [
        {"prompt_id": "p1", "prompt": "Hi", "model": "a", "score": 1.0, "output_tokens": 10},
        {"prompt_id": "p1", "prompt": "Hi", "model": "a", "score": 0.0, "output_tokens": 30},
        {"prompt_id": "p1", "prompt": "Hi", "model": "b", "score": 0.5},
        {"prompt_id": "p2", "prompt": "Hello there", "model": "b", "score": 1.0},
    ]
    write_lines(path, rows)

    ds = read_long_outcomes(path, name="feedback")

    assert ds.name == "feedback"
    nan_equal(ds.scores, [[0.5, 0.5], [NAN, 1.0]])
    nan_equal(ds.output_tokens, [[20, NAN], [NAN, NAN]])
    assert ds.input_tokens is None and ds.groups is None
    assert np.isnan(ds.cost_usd).all()
    assert ds.problems == [
        "duplicate rows: 1 (prompt, model) cells recorded more than once; averaged",
        "missing outcomes: 1 of 4 (prompt, model) cells have no score (NaN)",
    ]


def test_long_outcomes_conflicting_and_empty_prompt_texts_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(
        LONG_HEADER + "p1,Hi,a,1,,,,\np1,Hello,b,1,,,,\np2,,a,1,,,,\np2,,b,0,,,,\np3,,a,1,,,,\np3,Later,b,1,,,,\n",
        "utf-8",
    )
    ds = read_long_outcomes(path)
    assert ds.prompts == ["Hi", "", "Later"]
    assert ds.problems == [
        "conflicting prompts: 1 prompt ids carry different prompt texts; first kept",
        "empty prompts: 1 prompt ids have no prompt text",
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("p1,Hi,a,abc,,,,", "row 2: score 'abc' is not a number"),
        ("p1,Hi,a,1.5,,,,", "row 2: score 1.5 is outside [0, 1]"),
        (",Hi,a,1,,,,", "row 2: empty prompt_id or model"),
        ("p1,Hi,a,1,many,,,", "row 2: "),
    ],
)
def test_long_outcomes_bad_row_names_file_and_row(tmp_path: Path, row: str, expected: str) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text(LONG_HEADER + row + "\n", "utf-8")
    with pytest.raises(ConfigurationError) as error:
        load_dataset(str(path))
    assert str(error.value).startswith(f"{path}, {expected}")


def test_long_outcomes_missing_column_and_empty_file_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text('{"prompt_id": "p1", "model": "a", "score": 1}\n{"prompt_id": "p1", "model": "b"}\n', "utf-8")
    with pytest.raises(ConfigurationError, match=r"outcomes.jsonl, line 2: missing column 'score'"):
        read_long_outcomes(path)
    path.write_text("", "utf-8")
    with pytest.raises(ConfigurationError, match=re.escape("outcomes.jsonl: no outcomes")):
        read_long_outcomes(path)


def test_a_routerbench_csv_given_by_path_is_read_as_routerbench() -> None:
    ds = load_dataset(str(FIXTURES / "routerbench/arc_challenge_train.csv"))
    assert ds.name == "arc_challenge_train"
    assert ds.prompt_ids == ["arc-challenge.test.1108", "arc-challenge.test.42", "arc-challenge.val.208"]
    assert not any(p.startswith("split leakage") for p in ds.problems)  # no other split by path


# -- leakage between two datasets --------------------------------------------------------------


def _dataset(name: str, ids: list[str], prompts: list[str]) -> Dataset:
    shape = (len(ids), 1)
    return Dataset(name, ids, prompts, ["m"], np.ones(shape), np.zeros(shape))


def test_check_leakage_reports_shared_ids_texts_and_near_identical_texts() -> None:
    train = _dataset("train", ["a", "b", "c"], ["What is 2+2?", "Name a  colour", "Unique"])
    test = _dataset("test", ["a", "x", "y"], ["Other", "What is 2+2?", "name a colour "])
    assert check_leakage(train, test) == [
        "1 prompt ids in both train and test: a",
        "1 prompt texts in both train and test",
        "1 more prompt texts equal up to whitespace and case in both",
    ]
    assert check_leakage(train, _dataset("other", ["z"], ["Nothing shared"])) == []


# -- where the data is, and names --------------------------------------------------------------


def test_data_dir_comes_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_dir(FIXTURES) == FIXTURES
    assert data_dir() == tmp_path
    assert load_dataset("routellm/gsm8k", data=FIXTURES).size == 2  # the argument wins
    monkeypatch.setenv(DATA_DIR_ENV, str(FIXTURES))
    assert load_dataset("routellm/gsm8k").size == 2


def test_data_dir_that_does_not_exist_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigurationError, match=re.escape(f"data directory {missing} does not exist")):
        data_dir(missing)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_dataset("routellm/gsm8k", data=missing)
    monkeypatch.setenv(DATA_DIR_ENV, str(missing))
    with pytest.raises(ConfigurationError, match=re.escape(f"{DATA_DIR_ENV}={missing}: no such directory")):
        data_dir()


def test_data_dir_default_is_shared_datasets_next_to_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    default = Path(readers.__file__).resolve().parents[3] / "shared" / "datasets"
    if default.is_dir():
        assert data_dir() == default
    else:
        with pytest.raises(ConfigurationError, match=f"set {DATA_DIR_ENV}"):
            data_dir()


def test_a_file_missing_from_the_data_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_dataset("routellm/gsm8k", data=tmp_path)
    message = str(error.value)
    assert f"{tmp_path / 'routellm/gsm8k/gsm8k_responses.csv'} does not exist" in message
    assert f"data directory {tmp_path}, from the argument" in message
    with pytest.raises(ConfigurationError, match=re.escape("arc_challenge_train.csv does not exist")):
        load_dataset("routerbench/arc_challenge", split="train", data=tmp_path)


def test_unknown_dataset_name_lists_the_known_ones() -> None:
    for name in ("imagenet", "routellm/humaneval", "zeroeval/mmlu"):
        with pytest.raises(ConfigurationError, match=re.escape(f"unknown dataset '{name}'")) as error:
            load_dataset(name, data=FIXTURES)
        for known in DATASETS:
            assert known in str(error.value)


@pytest.mark.parametrize("split", [None, "dev"])
def test_routerbench_needs_a_split(split: str | None) -> None:
    with pytest.raises(ConfigurationError, match="pass split='train' or split='test'"):
        load_dataset("routerbench/arc_challenge", split=split, data=FIXTURES)


def test_datasets_without_split_refuse_one() -> None:
    with pytest.raises(ConfigurationError, match="routellm/mmlu has no train/test split"):
        load_dataset("routellm/mmlu", split="train", data=FIXTURES)
    with pytest.raises(ConfigurationError, match=r"unknown dataset .* without split"):
        load_dataset(str(FIXTURES / "outcomes_long.csv"), split="train")


# -- the real data (optional) ------------------------------------------------------------------


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"no real benchmark data at {REAL_DATA}")
def test_real_routerbench_arc_challenge_train_split() -> None:
    ds = load_dataset("routerbench/arc_challenge", split="train", data=REAL_DATA)
    # 1,039 rows: 7 sample_ids on two complementary rows each (merged), 6 halves whose other half
    # is in the test file (dropped).
    assert ds.size == 1039 - 7 - 6
    assert len(ds.models) == 11
    assert not np.isnan(ds.scores).any()
    assert ds.problems[0].startswith("duplicate sample_ids: 7 sample_ids occur on several rows")
    assert any(p.startswith("missing scores: 6 rows") for p in ds.problems)
    assert any(p.startswith("split leakage: 6 sample_ids also occur in arc_challenge_test.csv") for p in ds.problems)
