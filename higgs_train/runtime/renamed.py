"""The spellings the tools used before they shared one vocabulary (`model`, `data`, `out` (always a folder),
`adapter`, `list`, samples per prompt), each answered with one line naming the new spelling before anything loads."""

from __future__ import annotations

# GRPO's reward names before rewards carried the metric registry's names.
RENAMED_REWARDS = {"stop": "stopped", "duration": "duration_error", "silence": "trailing_silence",
                   "loops": "loop_share", "similarity": "speaker_similarity"}

RENAMED = {
    "higgs-prep": {"--input": "--data", "--output": "--out", "--candidates": "--samples-per-prompt"},
    "higgs-train": {"objective.group_size": "objective.samples_per_prompt",
                    **{f"objective.rewards.{old}": f"objective.rewards.{new}" for old, new in RENAMED_REWARDS.items()}},
    "higgs-generate": {"out_dir": "out", "prompts": "list"},
}


def renamed_spelling(tool: str, argv: list[str]) -> str | None:
    """The one-line answer to the first old spelling in `argv` (`--input x`, `--input=x`, `key=value`,
    `+key=value`), or None when there is none."""
    renamed = RENAMED.get(tool, {})
    for argument in argv:
        key = argument.split("=", 1)[0].lstrip("+~") if not argument.startswith("-") else argument.split("=", 1)[0]
        if key in renamed:
            return f"{key} is now {renamed[key]}"
    return None
