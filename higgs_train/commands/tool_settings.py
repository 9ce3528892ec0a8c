"""The settings `higgs-eval` and `higgs-generate` take besides the generation ones (whose fields, ranges and help are
`GenerationConfig`'s), checked before any weight loads: one line naming the key and what it may be."""

from __future__ import annotations

import re

from higgs_train.config.generation import GenerationConfig, generation_config
from higgs_train.runtime.key_value_args import ArgumentError

DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_tool_settings(args: dict, generation_keys: tuple[str, ...]) -> GenerationConfig:
    """The generation settings of `args`, checked; raises for the first setting outside its range."""
    settings = generation_config(args, generation_keys)
    limit = args.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ArgumentError(f"limit={limit!r} must be an integer >= 0 (the first N utterances; 0 for all)")
    if not DEVICE.fullmatch(str(args["device"])):
        raise ArgumentError(f"device={args['device']!r} is not a device; use auto, cpu, cuda or cuda:N")
    return settings
