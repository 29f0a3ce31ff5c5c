"""Intent classification: macro-F1 per intent and per language, on utterances the classifier never saw.

Two test sets, neither used in training or in choosing any setting:

- ``held-out``: the fixed held-out part (20 %, by a hash of each text) of the utterances shipped in
  ``majordome/router/data`` (the classifier trains on the other 80 %);
- ``independent``: ``benchmarks/data/intents_eval.jsonl``, written separately by another author
  from the taxonomy alone, never read while the training data or the classifier were made.

With ``--peer``, the same sets go through ``semantic-router`` (its ``SemanticRouter`` with one route
per intent, the same training utterances, the same static embedder as encoder), run in its own
virtual environment (``benchmarks/.venv-peer``: semantic-router pins openai < 3, majordome needs
3) by ``benchmarks/peer_semantic_router.py``; accuracy and latency are reported side by side and
as ratios.

    python benchmarks/intents.py            # majordome only
    python benchmarks/intents.py --peer     # and semantic-router (builds its venv on first use)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, command_line, machine, print_table, summary_ms, write_json

from majordome.router.intents import IntentReport, load_utterances, packaged_utterances, split_held_out
from majordome.router.router import default_components

EVAL = Path(__file__).resolve().parent / "data" / "intents_eval.jsonl"
PEER_VENV = Path(__file__).resolve().parent / ".venv-peer"


def report_dict(report: IntentReport) -> dict[str, object]:
    return {
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "per_intent": {
            k: {"precision": v.precision, "recall": v.recall, "f1": v.f1, "support": v.support}
            for k, v in report.per_intent.items()
        },
        "per_language": {k: {"accuracy": a, "macro_f1": f, "n": n} for k, (a, f, n) in report.per_language.items()},
        "confusions": [list(c) for c in report.confusions],
        "below_threshold": report.abstained,
    }


def ensure_peer() -> Path:
    python = PEER_VENV / "bin" / "python"
    # (re)install when the venv is missing or an earlier install stopped before semantic-router
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('semantic_router') is None)"
    if not python.exists() or subprocess.run([str(python), "-c", probe], check=False).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[knowledge]", "semantic-router"], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", action="store_true", help="also run semantic-router on the same sets")
    args = parser.parse_args()

    components = default_components()
    classifier = components.classifier
    rows = packaged_utterances()
    train, held = split_held_out(rows)
    independent = load_utterances(EVAL)
    results: dict[str, object] = {
        "train": len(train),
        "held_out": len(held),
        "independent": len(independent),
        "threshold": classifier.threshold,
    }
    table_rows = []
    for name, data in (("held-out", held), ("independent", independent)):
        report = classifier.evaluate(data)
        results[name] = report_dict(report)
        print(f"\n## majordome on {name} ({len(data)} utterances)\n\n{report.table()}")
        print(
            f"accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}; main confusions: "
            + ", ".join(f"{t}->{p} {n}" for t, p, n in report.confusions[:5])
        )
        table_rows.append(
            [
                "majordome",
                name,
                report.accuracy,
                report.macro_f1,
                report.per_language.get("en", (0, 0, 0))[1],
                report.per_language.get("fr", (0, 0, 0))[1],
            ]
        )

    texts = [r.text for r in independent]
    classifier.classify(texts[0])
    latencies = []
    for text in texts:
        started = time.perf_counter()
        classifier.classify(text)
        latencies.append(time.perf_counter() - started)
    results["latency"] = summary_ms(latencies)

    if args.peer:
        python = ensure_peer()
        out = subprocess.run(
            [str(python), str(Path(__file__).resolve().parent / "peer_semantic_router.py")],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            sys.exit(f"the semantic-router run failed:\n{out.stderr[-4000:]}")
        peer = json.loads(out.stdout.strip().splitlines()[-1])
        results["semantic_router"] = peer
        for name in ("held-out", "independent"):
            p = peer[name]
            table_rows.append(
                ["semantic-router", name, p["accuracy"], p["macro_f1"], p["macro_f1_en"], p["macro_f1_fr"]]
            )
        ours = results["latency"]["p50_ms"]  # type: ignore[index]
        results["ratios"] = {
            "accuracy_independent_majordome_over_peer": results["independent"]["accuracy"]
            / max(peer["independent"]["accuracy"], 1e-9),  # type: ignore[index]
            "latency_p50_peer_over_majordome": peer["latency"]["p50_ms"] / ours,
        }

    print_table(
        "Intent classification", ["classifier", "set", "accuracy", "macro-F1", "macro-F1 en", "macro-F1 fr"], table_rows
    )
    lat = results["latency"]
    print(f"classify() latency on the independent set: p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms")  # type: ignore[index]
    if "ratios" in results:
        print(f"ratios: {results['ratios']}")
    write_json("intents", {"benchmark": "intents", "command": command_line(), "machine": machine(), **results})


if __name__ == "__main__":
    main()
