"""A/B, honestly: each variant against the first (the baseline) on the same utterances and seeds, per metric the
difference with its paired bootstrap 95% interval, and a verdict in words: "better", "worse" or "no measurable
difference" (the interval holds 0). Below `MIN_UTTERANCES` paired utterances there is no verdict, and the table
says so instead of guessing.

The bootstrap resamples utterances (the same draw for every metric and variant, seeded): the mean of per-utterance
differences for mean metrics, the difference of corpus ratios for corpus metrics (WER: errors over words).
"""

from __future__ import annotations

import numpy as np

from higgs_train.evaluate.metrics import METRICS

MIN_UTTERANCES = 10
RESAMPLES = 2000
LEVEL = 0.95


def _mean_difference(base: list[dict], other: list[dict], name: str):
    """Per-utterance differences of one metric where both variants have it: (their mean, a resampler)."""
    pairs = [(a[name], b[name]) for a, b in zip(base, other) if a.get(name) is not None and b.get(name) is not None]
    if not pairs:
        return None
    values = np.array([float(b) - float(a) for a, b in pairs])
    return len(values), float(values.mean()), lambda draw: values[draw].mean(axis=1)


def _corpus_difference(base: list[dict], other: list[dict], name: str):
    rows = [(a, b) for a, b in zip(base, other) if a.get(f"{name}_words") is not None
            and b.get(f"{name}_words") is not None]
    if not rows:
        return None
    errors = np.array([[a[f"{name}_errors"], b[f"{name}_errors"]] for a, b in rows], dtype=float)
    words = np.array([a[f"{name}_words"] for a, _ in rows], dtype=float)

    def ratio(draw):
        total = np.maximum(words[draw].sum(axis=-1), 1)
        return errors[draw, 1].sum(axis=-1) / total - errors[draw, 0].sum(axis=-1) / total

    return len(rows), float(ratio(np.arange(len(rows))[None])[0]), ratio


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    if low <= 0 <= high:
        return "no measurable difference"
    return "better" if (low > 0) == higher_is_better else "worse"


def compare(base: list[dict], other: list[dict], seed: int = 0) -> dict[str, dict]:
    """Per ranked metric: n, the baseline's and the variant's value, the difference (variant - baseline), its 95%
    interval and the verdict. `base` and `other` are per-utterance records in the same order."""
    rows = {}
    draw_cache: dict[int, np.ndarray] = {}
    for metric in METRICS.values():
        if metric.higher_is_better is None:
            continue
        figures = [(metric.summary, _mean_difference(base, other, metric.name))]
        if metric.corpus is not None:
            figures.append((f"{metric.name}_corpus", _corpus_difference(base, other, metric.name)))
        for key, found in figures:
            if found is None:
                continue
            n, difference, resample = found
            row = {"n": n, "difference": difference}
            if n < MIN_UTTERANCES:
                row["verdict"] = f"too few utterances for an interval ({n} < {MIN_UTTERANCES})"
            else:
                if n not in draw_cache:
                    draw_cache[n] = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
                low, high = np.quantile(resample(draw_cache[n]), [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
                row.update(low=float(low), high=float(high),
                           verdict=verdict(float(low), float(high), metric.higher_is_better))
            rows[key] = row
    return rows
