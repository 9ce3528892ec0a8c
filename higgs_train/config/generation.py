"""The generation settings, one dataclass read by the training run's evaluation (`eval.*`), `higgs-generate` and
`higgs-eval` alike: their keys, defaults, types, ranges and help are written here once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from higgs_train.config.checks import ConfigError, Group, count, is_number, number, one_of, setting, shown


def _at_most_zero(key: str, value) -> None:
    if not is_number(value) or value > 0:
        raise ConfigError(f"{key}={shown(value)} must be at most 0 (a level in dBFS, e.g. -40)")


@dataclass
class GenerationConfig(Group):
    max_new_tokens: int = setting(500, "the token limit a sample may run to", count())
    do_sample: bool = setting(False, "sample (true) or decode greedily (false)")
    temperature: float = setting(0.7, "the sampling temperature (do_sample=true)", number(0, inclusive=False))
    ras_win_len: int | None = setting(7, "repetition-aware sampling window (only when do_sample; greedy decoding "
                                         "always switches it off); null: off", count(optional=True))
    ras_win_max_num_repeat: int = setting(2, "repeats allowed in the repetition-aware sampling window", count())
    batch_size: int = setting(4, "prompts generated together", count())
    seed: int = setting(0, "each batch of samples is drawn from seed + its first index (do_sample=true)", count(0))
    chars_per_second: float = setting(15.0, "speaking rate for the expected length of a prompt that has no target "
                                      "clip", number(0, inclusive=False))
    silence_db: float = setting(-40.0, "a 40 ms frame below this RMS level (dBFS) counts as silent", _at_most_zero)
    trim_silence: bool = setting(False, "cut a sample's trailing silence (below silence_db) off, and say so")
    duration_cap: float | None = setting(None, "e.g. 2.0: no sample longer than that many times its text's "
                                            "expected length (said); null: no cap",
                                            number(0, inclusive=False, optional=True))
    language: str = setting("en", "en | zh: how the word error rate tokenizes (zh: per character, as Seed-TTS-eval)",
                            one_of("en", "zh"))
    asr_model: str | None = setting(None, "e.g. openai/whisper-large-v3 (a folder or the local cache): word error "
                                       "rate")
    speaker_model: str | None = setting(None, "e.g. microsoft/wavlm-base-plus-sv: cosine similarity to the "
                                           "reference / target voice")


def _every(key: str, value) -> None:
    if value not in (None, "auto") and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ConfigError(f"{key}={shown(value)} must be a positive integer, auto (a tenth of the run) or null (only "
                          "at the end)")


def _band(key: str, band) -> None:
    if band is not None and not (len(band) == 2 and all(map(is_number, band)) and 0 < band[0] < 1 < band[1]):
        raise ConfigError(f"{key}={band!r} must be [low, high] around 1 (e.g. [0.8, 1.25]: the generated length "
                          "over the expected), or null for no constraint")


def _best_metric(key: str, name) -> None:
    from higgs_train.evaluate.metrics import METRICS, direction

    try:
        ranks = direction(name) is not None
    except KeyError:
        ranks = False
    if not ranks:
        allowed = ["val_loss", "val_accuracy"] + [m.summary for m in METRICS.values() if m.higher_is_better is not None]
        raise ConfigError(f"{key}={name!r} cannot rank evaluations; use one of {allowed}")


def _prompts(key: str, value) -> None:
    if value and not Path(value).is_file():
        raise ConfigError(f"{key}={value} does not exist; give a prompts JSONL (one {{\"text\": ...}} per line, see "
                          "README) or null for the held-out conversations")


@dataclass
class EvalConfig(GenerationConfig):
    """The training run's evaluation: validation loss on held-out conversations, then generated samples measured
    by every metric their judges allow; the generation settings are `GenerationConfig`'s."""

    KEY = "eval"
    every_n_steps: Any = setting("auto", "auto: a tenth of trainer.max_steps, at least 50 steps apart | a number of "
                                 "steps | null: only at the end", _every)
    best_metric: str = setting("val_loss", "what best/ and trainer.early_stopping_patience rank by: val_loss, or a "
                               "sample metric's summary (stop_rate, duration_error, wer, ...)", _best_metric)
    best_duration_band: list[float] | None = setting(
        help="a sample metric's evaluation is a candidate for best/ only while its samples' mean duration_ratio lies "
        "in this band (null: no constraint)", check=_band, factory=lambda: [0.8, 1.25])
    val_size: int = setting(4, "conversations held out from data.path (chosen by seed); 0: no validation split",
                            count(0, why=" (0: no validation split)"))
    prompts: str | None = setting(None, "null: the held-out conversations' prompts (else the first training ones) "
                                     "| a prompts JSONL", _prompts)
    num_samples: int = setting(2, "generated samples per evaluation; 0: none", count(0, why=" (0: no generated "
                                                                                    "samples)"))


def key_value_defaults(keys: tuple[str, ...]) -> tuple[dict, dict]:
    """The defaults and value types of these generation keys, as a tool's `KEY=VALUE` parser needs them."""
    hints = get_type_hints(GenerationConfig)
    chosen = [item for item in fields(GenerationConfig) if item.name in keys]
    defaults = {item.name: item.default for item in chosen}
    return defaults, {item.name: _plain(hints[item.name]) for item in chosen}


def _plain(hint) -> type:
    """`Optional[float]` -> float: the type a given value is read as (null is None whatever the type)."""
    inner = [arg for arg in get_args(hint) if arg is not type(None)]
    return inner[0] if inner else hint


def generation_config(args: dict, keys: tuple[str, ...]) -> GenerationConfig:
    """A tool's generation settings, checked by their fields (a `ConfigError` naming the key); the keys a tool does
    not take keep their defaults."""
    return GenerationConfig(**{key: args[key] for key in keys})
