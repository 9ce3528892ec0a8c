"""A recording's own text (an audiobook chapter and its book text): each clip, in order, gets the span of the book's
words that its ASR transcript matches best, so the clip's text is the book's, word for word.

The book is cut into as many consecutive spans as there are clips by dynamic programming. A span scores by how
closely its letters match the clip's transcript, by how well its length fits the clip's speech time (the
recording's own reading rate), and by ending where the book has punctuation (people pause there). Cuts are looked
for near where the reading rate puts them. The match score kept
for each clip is the letter similarity of its transcript and its span (1.0: identical). Only the `BEAM` best cuts
after each clip go on, so the cost grows with the number of clips, not with the square of the text.
"""

from __future__ import annotations

import difflib
import re

import numpy as np

from higgs_train.evaluate.judges import normalize_for_wer

PAUSE_PUNCTUATION = re.compile(r"[.!?;:,\"')\]]$")
BAND_WORDS = 60  # how far from the reading-rate estimate a cut is looked for
LENGTH_SLACK = 2.5  # a span's letters are within this factor of what the clip's speech time holds
BEAM = 12  # cuts kept after each clip
TEXT_WEIGHT, LENGTH_WEIGHT, PUNCTUATION_BONUS = 1.0, 0.5, 0.3


def similarity(heard: str, text: str) -> float:
    """Letter similarity of two texts after WER normalisation (0..1)."""
    a, b = normalize_for_wer(heard).replace(" ", ""), normalize_for_wer(text).replace(" ", "")
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a or b else 1.0


def align(book: str, transcripts: list[str], speech_seconds: list[float]) -> list[tuple[str, float]]:
    """(the book's words for each clip, the match score), in the clips' order."""
    words = book.split()
    clips = len(transcripts)
    if not clips:
        return []
    letters = np.cumsum([0] + [len(w) for w in words])
    rate = letters[-1] / max(sum(speech_seconds), 1e-9)
    expected_end = np.cumsum(speech_seconds) * rate  # letters read by the end of each clip
    # best[k][j]: best score of clips 0..k-1 ending at word j; choice[k][j]: where clip k-1 started
    best = [{0: 0.0}]
    choices: list[dict[int, int]] = [{}]
    for k in range(clips):
        target = int(np.searchsorted(letters, expected_end[k]))
        ends = range(max(target - BAND_WORDS, 1), min(target + BAND_WORDS, len(words)) + 1) if k < clips - 1 \
            else [len(words)]
        row, choice = {}, {}
        for end in ends:
            for start, previous in best[k].items():
                if start >= end:
                    continue
                span_letters = letters[end] - letters[start]
                expected = max(speech_seconds[k] * rate, 1)
                if not expected / LENGTH_SLACK - 10 <= span_letters <= expected * LENGTH_SLACK + 10:
                    continue
                text = " ".join(words[start:end])
                fit = -abs(np.log(max(span_letters, 1) / max(speech_seconds[k] * rate, 1)))
                score = previous + TEXT_WEIGHT * similarity(transcripts[k], text) + LENGTH_WEIGHT * fit + \
                    (PUNCTUATION_BONUS if PAUSE_PUNCTUATION.search(words[end - 1]) else 0.0)
                if score > row.get(end, -np.inf):
                    row[end], choice[end] = score, start
        if not row:
            raise ValueError("the known text is too short for the recording's clips")
        kept = sorted(row, key=row.get, reverse=True)[:BEAM]  # the most likely cuts go on
        best.append({end: row[end] for end in kept})
        choices.append(choice)
    spans, end = [], len(words)
    for k in range(clips, 0, -1):
        if end not in choices[k]:
            raise ValueError("the known text cannot be spread over the recording's clips")
        start = choices[k][end]
        spans.append((start, end))
        end = start
    spans.reverse()
    return [(" ".join(words[s:e]), similarity(transcripts[k], " ".join(words[s:e]))) for k, (s, e) in enumerate(spans)]
