from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from majordome import ConfigurationError
from majordome.router import KNNQuality, LinearQuality, OutcomeTable, PriorQuality, Router, load_quality, read_outcomes

MATH = [
    "What is {a} times {b}? Show the steps.",
    "Solve for x: {a}x + {b} = 100",
    "If I earn {a} dollars a month and grow {b}% a month, what do I earn in a year?",
    "Compute the average of {a}, {b} and 17.",
]
CHAT = [
    "A fan says: you looked amazing in your last video {a}! Reply warmly.",
    "Write a flirty but friendly answer to a fan who said good morning {b}",
    "Reply to this message from a subscriber: thanks for the live, see you soon {a}",
    "Help me answer a fan who asks how my day was {b}",
]


def write_outcomes(path: Path, rows: int = 120) -> None:
    rng = np.random.default_rng(7)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["prompt_id", "prompt", "model", "score", "output_tokens", "cost_usd"])
        writer.writeheader()
        for i in range(rows):
            a, b = int(rng.integers(2, 99)), int(rng.integers(2, 99))
            is_math = i % 2 == 0
            prompt = (MATH if is_math else CHAT)[i % 4].format(a=a, b=b)
            strong = 1.0 if rng.random() < 0.95 else 0.0
            weak = (1.0 if rng.random() < 0.2 else 0.0) if is_math else (1.0 if rng.random() < 0.9 else 0.0)
            writer.writerow(
                {
                    "prompt_id": f"p{i}",
                    "prompt": prompt,
                    "model": "strong",
                    "score": strong,
                    "output_tokens": 300,
                    "cost_usd": 0.01,
                }
            )
            writer.writerow(
                {
                    "prompt_id": f"p{i}",
                    "prompt": prompt,
                    "model": "weak",
                    "score": weak,
                    "output_tokens": 200,
                    "cost_usd": 0.001,
                }
            )


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> OutcomeTable:
    path = tmp_path_factory.mktemp("outcomes") / "outcomes.csv"
    write_outcomes(path)
    return OutcomeTable.from_outcomes(read_outcomes(path))


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


def held_out(router: Router) -> tuple[np.ndarray, np.ndarray]:
    math = router.inputs_for_texts(["What is 41 times 3? Show the steps.", "Solve for x: 7x + 2 = 100"])
    chat = router.inputs_for_texts(
        [
            "A fan says: you looked amazing in your last video! Reply warmly.",
            "Help me answer a fan who asks how my day was",
        ]
    )
    return math, chat  # type: ignore[return-value]


def test_outcome_table(table: OutcomeTable) -> None:
    assert table.models == ["strong", "weak"]
    assert table.scores.shape == (120, 2) and not np.isnan(table.scores).any()
    assert table.duplicates == 0


@pytest.mark.parametrize("kind", ["knn", "linear"])
def test_learned_models_tell_where_the_weak_model_fails(
    kind: str, router: Router, table: OutcomeTable, tmp_path: Path
) -> None:
    model = router.train_quality(kind, table)
    assert isinstance(model, KNNQuality if kind == "knn" else LinearQuality)
    math, chat = held_out(router)
    q_math = model.predict(math, ["strong", "weak"])  # type: ignore[arg-type]
    q_chat = model.predict(chat, ["strong", "weak"])  # type: ignore[arg-type]
    assert (q_math[:, 0] - q_math[:, 1]).min() > 0.4  # math: strong much better
    assert np.abs(q_chat[:, 0] - q_chat[:, 1]).max() < 0.3  # chat: about the same
    assert ((q_math >= 0) & (q_math <= 1)).all()
    # unknown models fall back to the priors
    assert model.predict(math, ["deepseek-v3"]).shape == (2, 1)  # type: ignore[arg-type]
    path = tmp_path / f"{kind}.npz"
    model.save(path)
    loaded = load_quality(path)
    assert type(loaded) is type(model)
    assert np.allclose(
        loaded.predict(math, ["strong", "weak", "deepseek-v3"]),  # type: ignore[arg-type]
        model.predict(math, ["strong", "weak", "deepseek-v3"]),
    )  # type: ignore[arg-type]


def test_prior_table_moves_towards_the_outcomes(router: Router, table: OutcomeTable, tmp_path: Path) -> None:
    model = router.train_quality("prior", table)
    assert isinstance(model, PriorQuality)
    math, _ = held_out(router)
    q = model.predict(math, ["strong", "weak"])  # type: ignore[arg-type]
    assert (q[:, 0] > q[:, 1]).all()
    model.save(tmp_path / "prior.npz")
    assert np.allclose(load_quality(tmp_path / "prior.npz").predict(math, ["strong"]), q[:, :1])  # type: ignore[arg-type]


def test_bad_outcome_files_name_the_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt_id,prompt,model,score\np1,hi,a,1.5\n")
    with pytest.raises(ConfigurationError, match=r"row 2: score 1.5 is outside \[0, 1\]"):
        read_outcomes(bad)
    bad.write_text("prompt_id,prompt,score\np1,hi,1\n")
    with pytest.raises(ConfigurationError, match="missing column 'model'"):
        read_outcomes(bad)
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"prompt_id": "p", "model": "m", "score": 1}\n[1]\n')
    with pytest.raises(ConfigurationError, match="line 2: not a JSON object"):
        read_outcomes(jsonl)
    with pytest.raises(ConfigurationError, match=r"not a majordome quality model|cannot load"):
        (tmp_path / "x.npz").write_bytes(b"nope")
        load_quality(tmp_path / "x.npz")


def test_duplicates_are_averaged_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text(
        '{"prompt_id": "p", "prompt": "x", "model": "m", "score": 1}\n'
        '{"prompt_id": "p", "prompt": "x", "model": "m", "score": 0}\n'
    )
    table = OutcomeTable.from_outcomes(read_outcomes(path))
    assert table.scores[0, 0] == 0.5 and table.duplicates == 1
