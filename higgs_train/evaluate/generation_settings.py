"""Range checks of the generation settings `higgs-eval` and `higgs-generate` take on their command lines, made before
any weight loads: a value that cannot generate (a zero batch, a negative limit, a NaN temperature) is one line naming
the key and what it may be, never a traceback minutes later or a silently different run."""

from __future__ import annotations

import math
import re

from higgs_train.runtime.key_value_args import ArgumentError

POSITIVE_INTEGERS = ("max_new_tokens", "batch_size", "ras_win_len", "ras_win_max_num_repeat")
POSITIVE_NUMBERS = ("temperature", "chars_per_second")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _integer(args: dict, key: str, minimum: int, meaning: str) -> None:
    value = args[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArgumentError(f"{key}={value!r} must be an integer >= {minimum} ({meaning})")


def _finite(args: dict, key: str, meaning: str) -> float:
    value = args[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArgumentError(f"{key}={value!r} must be a finite number ({meaning})")
    return value


def check_generation_settings(args: dict) -> None:
    """Raises `ArgumentError` for the first generation setting of `args` outside its range."""
    for key in POSITIVE_INTEGERS:
        _integer(args, key, 1, "a count")
    for key in POSITIVE_NUMBERS:
        if _finite(args, key, "above 0") <= 0:
            raise ArgumentError(f"{key}={args[key]!r} must be above 0")
    _integer(args, "seed", 0, "the sampling seed")
    if _finite(args, "silence_db", "a level in dBFS") > 0:
        raise ArgumentError(f"silence_db={args['silence_db']!r} must be at most 0 (a level in dBFS, e.g. -40)")
    cap = args.get("duration_cap")
    if cap is not None:
        try:
            args["duration_cap"] = cap = float(cap)
        except ValueError:
            raise ArgumentError(f"duration_cap={cap!r} must be a number (times the text's expected length)") from None
        if not math.isfinite(cap) or cap <= 0:
            raise ArgumentError(f"duration_cap={cap!r} must be a finite number above 0 (times the text's expected "
                                "length, e.g. 2.0), or null for no cap")
    if "limit" in args:
        _integer(args, "limit", 0, "the first N utterances; 0 for all")
    if not DEVICE.fullmatch(str(args["device"])):
        raise ArgumentError(f"device={args['device']!r} is not a device; use auto, cpu, cuda or cuda:N")
