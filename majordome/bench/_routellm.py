"""RouteLLM's evaluation data: MMLU, GSM8K and MT-Bench outcomes of one strong/weak pair.

Each benchmark has a list of contaminated prompts (near-duplicates of RouteLLM's router training
data) that RouteLLM removes before scoring; the readers do the same by exact match and report it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from majordome._errors import ConfigurationError
from majordome.bench._parsing import (
    PROMPT_FRAMING_TOKENS,
    boolean,
    contaminated,
    duplicate_prompts,
    estimate_input_tokens,
    nonempty,
    number,
    read_csv,
    read_jsonl,
)
from majordome.bench.dataset import Dataset
from majordome.models.tokens import count_tokens

_KEPT = "kept, each under its own prompt id"


def _bool_csv(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray | None]:
    """A RouteLLM response CSV: prompts, models, 0/1 scores, response lengths when present."""
    header, rows = read_csv(path, required=["prompt"])
    models = [c for c in header if c != "prompt" and not c.endswith("_response")]
    if not models:
        raise ConfigurationError(f"{path}: no model columns besides 'prompt'")
    if not rows:
        raise ConfigurationError(f"{path}: no data rows")
    orphans = [c for c in header if c.endswith("_response") and c.removesuffix("_response") not in models]
    if orphans:
        raise ConfigurationError(f"{path}: response column(s) {orphans} have no correctness column")
    shape = (len(rows), len(models))
    prompts = [nonempty(row.get("prompt"), row.at("prompt")) for row in rows]
    scores = np.array([[boolean(row.get(m), row.at(m)) for m in models] for row in rows]).reshape(shape)
    if not any(f"{m}_response" in header for m in models):
        return prompts, models, scores, None
    tokens = np.full(shape, np.nan)
    for j, m in enumerate(models):
        if f"{m}_response" in header:
            tokens[:, j] = [count_tokens(row.values[f"{m}_response"]) for row in rows]
    return prompts, models, scores, tokens


def _decontaminate(dataset: Dataset, listed: Sequence[str], label: str) -> Dataset:
    wanted = set(listed)
    keep = [i for i, p in enumerate(dataset.prompts) if p not in wanted]
    unmatched = len(wanted - set(dataset.prompts))
    note = f"; {unmatched} listed prompts match no row" if unmatched else ""
    result = dataset.take(keep)
    result.problems.append(
        f"contamination: {dataset.size - len(keep)} rows removed whose prompt is in {label} "
        f"({len(wanted)} listed, exact match){note}"
    )
    return result


def read_routellm_mmlu(folder: str | Path, *, decontaminate: bool = True) -> Dataset:
    """RouteLLM's MMLU outcomes: ``responses/mmlu_<subject>.csv`` (groups = subject; ids
    ``mmlu/<subject>/<row>``, 0-based), less the prompts of ``mmlu_contaminated_prompts.jsonl``.
    Repeated prompt texts are kept, each under its own id, and reported."""
    folder = Path(folder)
    files = sorted((folder / "responses").glob("mmlu_*.csv"))
    if not files:
        raise ConfigurationError(f"{folder / 'responses'}: no mmlu_<subject>.csv files")
    ids: list[str] = []
    prompts: list[str] = []
    groups: list[str] = []
    blocks: list[np.ndarray] = []
    models: list[str] = []
    for file in files:
        subject = file.stem.removeprefix("mmlu_")
        file_prompts, file_models, scores, _ = _bool_csv(file)
        if not models:
            models = file_models
        elif set(file_models) != set(models):
            raise ConfigurationError(f"{file}: models {file_models} differ from {models} in {files[0].name}")
        blocks.append(scores[:, [file_models.index(m) for m in models]])
        ids += [f"mmlu/{subject}/{i}" for i in range(len(file_prompts))]
        prompts += file_prompts
        groups += [subject] * len(file_prompts)
    scores = np.concatenate(blocks)
    dataset = Dataset(
        name="routellm/mmlu",
        prompt_ids=ids,
        prompts=prompts,
        models=models,
        scores=scores,
        cost_usd=np.full(scores.shape, np.nan),
        groups=groups,
        problems=duplicate_prompts(prompts, scores, _KEPT),
    )
    if decontaminate:
        name = "mmlu_contaminated_prompts.jsonl"
        dataset = _decontaminate(dataset, contaminated(folder / name), name)
    return dataset


def read_routellm_gsm8k(folder: str | Path, *, decontaminate: bool = True) -> Dataset:
    """RouteLLM's GSM8K outcomes (``gsm8k_responses.csv``; ids ``gsm8k/<row>``, 0-based; output
    tokens = the responses' ``cl100k_base`` lengths), less ``gsm8k_contaminated_prompts.jsonl``."""
    folder = Path(folder)
    prompts, models, scores, tokens = _bool_csv(folder / "gsm8k_responses.csv")
    dataset = Dataset(
        name="routellm/gsm8k",
        prompt_ids=[f"gsm8k/{i}" for i in range(len(prompts))],
        prompts=prompts,
        models=models,
        scores=scores,
        cost_usd=np.full(scores.shape, np.nan),
        output_tokens=tokens,
        problems=duplicate_prompts(prompts, scores, _KEPT),
    )
    if decontaminate:
        name = "gsm8k_contaminated_prompts.jsonl"
        dataset = _decontaminate(dataset, contaminated(folder / name), name)
    return dataset


# -- MT-Bench ----------------------------------------------------------------------------------

# FastChat's judge templates quote the judged answers between these markers.
_SINGLE = ("[The Start of Assistant's Answer]\n", "\n[The End of Assistant's Answer]")
_CONVERSATION = "<|The Start of Assistant A's Conversation with User|>"
_CONVERSATION_END = "\n\n<|The End of Assistant A's Conversation with User|>"
_ASSISTANT, _USER = "\n\n### Assistant A:\n", "\n\n### User:\n"


def _answers(judge_prompt: str, turn: int) -> tuple[str, str | None] | None:
    """The judged answer and, for turn 2, the model's first answer, read back from the judge's
    prompt; None when the prompt does not follow FastChat's templates."""
    if turn == 1:
        start = judge_prompt.rfind(_SINGLE[0])
        end = judge_prompt.rfind(_SINGLE[1])
        if start < 0 or end < start:
            return None
        return judge_prompt[start + len(_SINGLE[0]) : end], None
    conversation = judge_prompt.partition(_CONVERSATION)[2]
    parts = conversation.removesuffix(_CONVERSATION_END).split(_ASSISTANT)
    if len(parts) != 3 or not conversation.endswith(_CONVERSATION_END):
        return None
    return parts[2], parts[1].partition(_USER)[0]


def _questions(path: Path) -> dict[int, tuple[str, list[str]]]:
    questions: dict[int, tuple[str, list[str]]] = {}
    for row in read_jsonl(path):
        qid = row.get("question_id")
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise ConfigurationError(f"{row.at('question_id')}: expected an integer, got {qid!r}")
        if qid in questions:
            raise ConfigurationError(f"{row.at('question_id')}: question {qid} appears twice")
        turns = row.get("turns")
        if not isinstance(turns, list) or len(turns) != 2:
            raise ConfigurationError(f"{row.at('turns')}: expected a list of two strings")
        category = nonempty(row.get("category"), row.at("category"))
        questions[qid] = (category, [nonempty(t, row.at("turns")) for t in turns])
    if not questions:
        raise ConfigurationError(f"{path}: no questions")
    return questions


def read_routellm_mt_bench(folder: str | Path, *, decontaminate: bool = True) -> Dataset:
    """RouteLLM's MT-Bench judgements: one prompt per (question, turn), id ``mt_bench/<qid>/<turn>``.

        The prompt is the turn's text; turn 2 is preceded by turn 1 (blank line between), as it only
        makes sense after it. Score = GPT-4 judge score / 10; groups = category; clusters = the
    question (splits keep both turns on one side). Output tokens are the
        lengths of the judged answers (quoted in the judge's prompt); input tokens of turn 2 count
        turn 1, the model's first answer and turn 2. A question with a turn in
        ``mt_bench_contaminated_prompts.jsonl`` is removed with both its turns.
    """
    folder = Path(folder)
    questions = _questions(folder / "question.jsonl")
    cells: dict[tuple[int, int, str], list[tuple[float, float, float]]] = {}
    models: list[str] = []
    unknown: set[object] = set()
    failed = unreadable = 0
    for row in read_jsonl(folder / "judgements.jsonl"):
        qid, turn = row.get("question_id"), row.get("turn")
        model = nonempty(row.get("model"), row.at("model"))
        if turn not in (1, 2) or isinstance(turn, bool):
            raise ConfigurationError(f"{row.at('turn')}: expected 1 or 2, got {turn!r}")
        if not isinstance(qid, int) or qid not in questions:
            unknown.add(qid)
            continue
        if model not in models:
            models.append(model)
        if row.get("score") == -1:  # FastChat's mark of a judgement it could not parse
            failed += 1
            continue
        score = number(row.get("score"), row.at("score"), "judge score", 1.0, 10.0)
        if math.isnan(score):
            raise ConfigurationError(f"{row.at('score')}: missing judge score")
        turns = questions[qid][1]
        answers = _answers(str(row.values.get("user_prompt", "")), int(turn))
        inputs = outputs = math.nan
        if answers is None:
            unreadable += 1
        else:
            outputs = count_tokens(answers[0])
            inputs = estimate_input_tokens(turns[0])
            if answers[1] is not None:
                inputs += count_tokens(answers[1]) + estimate_input_tokens(turns[1]) + PROMPT_FRAMING_TOKENS
        cells.setdefault((qid, int(turn), model), []).append((score / 10, inputs, outputs))
    if not models:
        raise ConfigurationError(f"{folder / 'judgements.jsonl'}: no judgements")
    ids, prompts, groups = [], [], []
    table = np.full((2 * len(questions), len(models), 3), np.nan)
    for i, (qid, (category, turns)) in enumerate(questions.items()):
        for turn in (1, 2):
            ids.append(f"mt_bench/{qid}/{turn}")
            prompts.append(turns[0] if turn == 1 else f"{turns[0]}\n\n{turns[1]}")
            groups.append(category)
            for j, m in enumerate(models):
                if (qid, turn, m) in cells:
                    table[2 * i + turn - 1, j] = np.mean(cells[(qid, turn, m)], axis=0)
    problems = []
    duplicates = sum(len(v) > 1 for v in cells.values())
    if duplicates:
        problems.append(f"duplicate judgements: {duplicates} (question, turn, model) cells judged twice; averaged")
    if unknown:
        problems.append(f"unknown questions: judgements of {len(unknown)} question ids not in question.jsonl ignored")
    if failed:
        problems.append(f"failed judgements: {failed} judgements with score -1 left missing")
    missing = int(np.isnan(table[:, :, 0]).sum())
    if missing:
        problems.append(f"missing judgements: {missing} (question, turn, model) cells have no score (NaN)")
    if unreadable:
        problems.append(f"token counts: {unreadable} judge prompts do not quote the answer as expected (NaN tokens)")
    dataset = Dataset(
        name="routellm/mt_bench",
        prompt_ids=ids,
        prompts=prompts,
        models=models,
        scores=table[:, :, 0],
        cost_usd=np.full(table.shape[:2], np.nan),
        input_tokens=table[:, :, 1],
        output_tokens=table[:, :, 2],
        groups=groups,
        problems=problems,
        clusters=[pid.rsplit("/", 1)[0] for pid in ids],
    )
    if not decontaminate:
        return dataset
    listed = set(contaminated(folder / "mt_bench_contaminated_prompts.jsonl"))
    dropped = {qid for qid, (_, turns) in questions.items() if listed & set(turns)}
    unmatched = len(listed - {t for _, turns in questions.values() for t in turns})
    result = dataset.take([i for i, pid in enumerate(ids) if int(pid.split("/")[1]) not in dropped])
    note = f"; {unmatched} listed prompts match no turn" if unmatched else ""
    result.problems.append(
        f"contamination: {len(dropped)} questions ({2 * len(dropped)} prompts) removed, a turn of each being in "
        f"mt_bench_contaminated_prompts.jsonl ({len(listed)} listed, exact match){note}"
    )
    return result
