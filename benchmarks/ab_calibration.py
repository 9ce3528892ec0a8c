"""How often does higgs-eval's A/B give a verdict when there is no true difference? Null A/Bs: both variants' values
for each utterance come from the same distribution (an utterance effect both share, plus each variant's own noise),
are compared by `comparison.compare` itself, and any "better" or "worse" is a false verdict. A 95% interval
promises at most 5% for each metric.

    .venv/bin/python benchmarks/ab_calibration.py [--trials 2000] [--bootstrap]

Metrics: speaker_similarity (continuous, symmetric noise), duration_error (continuous, skewed: lognormal),
stop_rate (0/1, each utterance's stop probability drawn from Beta(4, 1), mean 0.8, and from Beta(1, 1)),
wer and wer_corpus (errors ~ Binomial(words, the utterance's rate ~ Beta(1, 9)), 5-20 words). Sizes: the minimum
the tool accepts (`MIN_UTTERANCES`) and 40. `--bootstrap` measures the paired percentile bootstrap (2,000
resamples, 2.5/97.5%) that the sign-flip interval replaced, in its place.
"""

from __future__ import annotations

import argparse

import numpy as np

from higgs_train.evaluate import comparison


def null_records(kind: str, n: int, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    ids = [f"u{i}" for i in range(n)]
    if kind == "speaker_similarity (normal)":
        shared = 0.7 + 0.1 * rng.standard_normal(n)
        values = [shared + 0.05 * rng.standard_normal(n) for _ in range(2)]
        return tuple([{"id": i, "speaker_similarity": float(v)} for i, v in zip(ids, variant)] for variant in values)
    if kind == "duration_error (lognormal)":
        shared = rng.standard_normal(n) - 2
        values = [np.exp(shared + rng.standard_normal(n)) for _ in range(2)]
        return tuple([{"id": i, "duration_error": float(v)} for i, v in zip(ids, variant)] for variant in values)
    if kind.startswith("stop_rate"):
        a, b = (4, 1) if "Beta(4, 1)" in kind else (1, 1)
        chance = rng.beta(a, b, n)
        return tuple([{"id": i, "stopped": bool(s)} for i, s in zip(ids, rng.random(n) < chance)] for _ in range(2))
    words = rng.integers(5, 21, n)
    rate = rng.beta(1, 9, n)
    variants = []
    for _ in range(2):
        errors = rng.binomial(words, rate)
        variants.append([{"id": i, "wer": e / w, "wer_errors": int(e), "wer_words": int(w)}
                         for i, e, w in zip(ids, errors, words)])
    return tuple(variants)


KINDS = ("speaker_similarity (normal)", "duration_error (lognormal)", "stop_rate Beta(4, 1)", "stop_rate Beta(1, 1)",
         "wer (binomial)")


def percentile_bootstrap(differences: np.ndarray, signs: np.ndarray, level: float = comparison.LEVEL):
    """The interval the tool used before: percentiles of the mean over utterances resampled with replacement."""
    draw = np.random.default_rng(int(abs(signs[0] @ np.arange(signs.shape[1])))).integers(
        0, len(differences), size=(2000, len(differences)))
    low, high = np.quantile(differences[draw].mean(axis=1), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def false_verdicts(kind: str, n: int, trials: int) -> dict[str, float]:
    counts: dict[str, int] = {}
    for trial in range(trials):
        base, other = null_records(kind, n, np.random.default_rng([trial, n, KINDS.index(kind)]))
        for key, row in comparison.compare(base, other, seed=trial).items():
            counts[key] = counts.get(key, 0) + (row["verdict"] in ("better", "worse"))
    return {key: count / trials for key, count in counts.items()}


def wilson(rate: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return centre - half, centre + half


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--bootstrap", action="store_true", help="the percentile bootstrap, for comparison")
    args = parser.parse_args()
    if args.bootstrap:
        comparison.sign_flip_interval = percentile_bootstrap
    print(f"interval: {'percentile bootstrap' if args.bootstrap else 'sign-flip test inverted'}; {args.trials} null "
          "A/Bs per row; false-verdict rate (its 95% Wilson interval)")
    worst = 0.0
    for n in (comparison.MIN_UTTERANCES, 40):
        for kind in KINDS:
            for key, rate in false_verdicts(kind, n, args.trials).items():
                low, high = wilson(rate, args.trials)
                worst = max(worst, rate)
                print(f"n={n:3d}  {kind:30s} {key:20s} {100 * rate:5.1f}%  ({100 * low:.1f}-{100 * high:.1f}%)")
    print(f"highest false-verdict rate: {100 * worst:.1f}%")


if __name__ == "__main__":
    main()
