"""A/B, honestly: each variant against the first (the baseline) on the same utterances and seeds, paired by
utterance id, per metric the difference with its 95% interval, and a verdict in words: "better", "worse" or "no
measurable difference" (the interval holds 0). Below `MIN_UTTERANCES` paired utterances there is no verdict, and the
table says so instead of guessing.

The interval inverts a paired sign-flip randomisation test: it holds every shift d for which the per-utterance
differences minus d, their signs flipped at random (seeded, the same flips for every metric), give a mean at least
as far from 0 as theirs in more than 5% of the flips. With no true difference the two variants of an utterance are
exchangeable, so a verdict comes at most 5% of the time whatever the metric's distribution (the paired percentile
bootstrap this replaces gave 8.5% at n = 10, more for skewed metrics; benchmarks/ab_calibration.py, BENCHMARKS.md).
Mean metrics: the mean of per-utterance differences; corpus metrics: the difference of corpus ratios, which is the
mean of the per-utterance error differences over the mean reference words (both variants read the same references).
"""

from __future__ import annotations

import numpy as np

from higgs_train.evaluate.metrics import METRICS
from higgs_train.runtime.errors import UserError

MIN_UTTERANCES = 10
FLIPS = 4000
LEVEL = 0.95


class PairingError(UserError):
    """The two variants' records are not the same utterances; the message names the ids that differ."""


def paired(base: list[dict], other: list[dict]) -> list[tuple[dict, dict]]:
    """(baseline record, variant record) per utterance id, in the baseline's order; refuses lists whose ids differ."""
    ids = [[record["id"] for record in records] for records in (base, other)]
    for records in ids:
        if len(set(records)) != len(records):
            repeated = sorted({i for i in records if records.count(i) > 1})
            raise PairingError(f"utterance ids repeat in one variant's records ({repeated[:3]}); give each utterance "
                               "one id")
    if set(ids[0]) != set(ids[1]):
        only = sorted(set(ids[0]) ^ set(ids[1]))
        raise PairingError(f"the variants' utterances differ ({len(only)} ids in one only, e.g. {only[:3]}); "
                           "compare evaluations of the same test list")
    by_id = {record["id"]: record for record in other}
    return [(record, by_id[record["id"]]) for record in base]


def _mean_differences(pairs: list[tuple[dict, dict]], name: str) -> np.ndarray:
    """Per-utterance differences (variant - baseline) of one metric where both variants have it."""
    return np.array([float(b[name]) - float(a[name]) for a, b in pairs
                     if a.get(name) is not None and b.get(name) is not None])


def _corpus_differences(pairs: list[tuple[dict, dict]], name: str) -> np.ndarray:
    """Per-utterance error differences over the mean reference words: their mean is the difference of the corpus
    ratios (all errors over all words)."""
    rows = [(a, b) for a, b in pairs if a.get(f"{name}_words") is not None and b.get(f"{name}_words") is not None]
    if not rows:
        return np.zeros(0)
    errors = np.array([float(b[f"{name}_errors"]) - float(a[f"{name}_errors"]) for a, b in rows])
    return errors / float(np.mean([a[f"{name}_words"] for a, _ in rows]))


def sign_flip_interval(differences: np.ndarray, signs: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The shifts d that the sign-flip test of "the differences are symmetric about d" does not reject at
    1 - `level` (Monte Carlo p-value with its +1 correction); `signs` holds one row of +-1 per random flip."""
    flipped, balance = signs @ differences / len(differences), signs.mean(axis=1)  # a flip's mean at d: these, less d*
    mean, alpha = float(differences.mean()), 1 - level

    def p_value(shift: float) -> float:
        as_far = np.abs(flipped - shift * balance) >= abs(mean - shift) * (1 - 1e-9)
        return (1 + np.count_nonzero(as_far)) / (len(signs) + 1)

    def edge(outer: float) -> float:
        inner = mean  # accepted (p = 1); `outer` is beyond the data, where only the all-equal flips are as far
        for _ in range(60):
            middle = (inner + outer) / 2
            inner, outer = (middle, outer) if p_value(middle) > alpha else (inner, middle)
        return inner

    spread = float(differences.max() - differences.min()) + 1e-9
    low, high = edge(float(differences.min()) - spread), edge(float(differences.max()) + spread)
    if p_value(0.0) > alpha:  # a verdict only where the test rejects "no difference" itself
        low, high = min(low, 0.0), max(high, 0.0)
    return low, high


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    if low <= 0 <= high:
        return "no measurable difference"
    return "better" if (low > 0) == higher_is_better else "worse"


def compare(base: list[dict], other: list[dict], seed: int = 0) -> dict[str, dict]:
    """Per ranked metric: n, the difference (variant - baseline), its 95% interval and the verdict. `base` and
    `other` are per-utterance records with an `id` each, the same ids in any order."""
    pairs = paired(base, other)
    rows = {}
    signs_by_n: dict[int, np.ndarray] = {}
    for metric in METRICS.values():
        if metric.higher_is_better is None:
            continue
        figures = [(metric.summary, _mean_differences(pairs, metric.name))]
        if metric.corpus is not None:
            figures.append((f"{metric.name}_corpus", _corpus_differences(pairs, metric.name)))
        for key, differences in figures:
            n = len(differences)
            if not n:
                continue
            row = {"n": n, "difference": float(differences.mean())}
            if n < MIN_UTTERANCES:
                row["verdict"] = f"too few utterances for an interval ({n} < {MIN_UTTERANCES})"
            else:
                if n not in signs_by_n:
                    signs_by_n[n] = np.random.default_rng(seed).choice([-1.0, 1.0], size=(FLIPS, n))
                low, high = sign_flip_interval(differences, signs_by_n[n])
                row.update(low=low, high=high, verdict=verdict(low, high, metric.higher_is_better))
            rows[key] = row
    return rows
