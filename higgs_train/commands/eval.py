"""`higgs-eval model=... [adapter=...] list=META.lst|ROWS.jsonl|builtin:demo-eval out=DIR`: any model (a hub id or
folder, a merged export, base + adapters) on a fixed test list, every utterance generated with fixed seeds (greedy
by default, repetition-aware sampling off), decoded and measured by the metric registry; with two or more variants,
an A/B table of each against the first with paired sign-flip 95% intervals and a verdict per metric.

Writes DIR/utterances.csv (one row per variant and utterance), DIR/summary.json (per variant its summary, the
comparisons, which judge measured what, what was not measured and why) and DIR/report.html (the tables and every
clip with a player), plus DIR/<variant>/<utt>.wav. Arguments are checked before any library loads.
"""

from __future__ import annotations

import copy
import csv
import json
from dataclasses import asdict
from pathlib import Path

from higgs_train.commands.tool_settings import check_tool_settings
from higgs_train.config.generation import key_value_defaults
from higgs_train.evaluate.judges import JUDGE_SETTINGS
from higgs_train.runtime.key_value_args import ArgumentError, hide_bitsandbytes, parse, run_tool
from higgs_train.runtime.progress import quiet_progress

JUDGE_KEYS = tuple(setting.removeprefix("eval.") for setting in JUDGE_SETTINGS)  # asr_model=, speaker_model=
JUDGE_LINES = "".join(f"  {key:<14} {judge.measures}: a checkpoint (e.g. {judge.example}, local cache or folder)\n"
                      for key, judge in zip(JUDGE_KEYS, JUDGE_SETTINGS.values()))
USAGE = f"""usage: higgs-eval model=NAME_OR_DIR|[M0,M1] [adapter=DIR|[A0,A1]] list=META.lst|ROWS.jsonl|builtin:demo-eval
                  [out=DIR] {' '.join(f'[{key}=...]' for key in JUDGE_KEYS)} [language=en|zh] [limit=N]

  model          the base (a hub id or folder, or a merged export); a list of models compares them
  adapter        PEFT adapter folder(s) on the first model, each one more variant (the base alone is the first)
  list           Seed-TTS-eval meta.lst (utt|prompt_text|prompt_wav|target_text[|target_wav], paths relative to the
                 list), a JSONL of higgs-generate prompts (+ optional target_audio) or conversation rows
  out            where to write (default eval_out); refused if it holds files higgs-eval did not write
{JUDGE_LINES}  limit          the first N utterances only

  generation: max_new_tokens, do_sample, temperature, ras_win_len, ras_win_max_num_repeat, batch_size, seed,
  chars_per_second, silence_db, trim_silence, duration_cap, device (auto|cpu|cuda); defaults, ranges and help:
  the eval.* keys of `higgs-train --help`"""
EVAL_KEYS = ("max_new_tokens", "do_sample", "temperature", "ras_win_len", "ras_win_max_num_repeat", "batch_size",
             "seed", "chars_per_second", "silence_db", *JUDGE_KEYS, "language", "trim_silence", "duration_cap")
GENERIC_NAMES = ("merged", "adapter", "export", "model", "best")


EVAL_DEFAULTS, EVAL_TYPES = key_value_defaults(EVAL_KEYS)


def _defaults() -> dict:
    return {"model": None, "adapter": None, "list": None, "out": "eval_out", "limit": 0, "device": "auto",
            **EVAL_DEFAULTS}


def variants(model, adapter) -> list[dict]:
    """The variants to evaluate, in order (the first is the A/B baseline), each with a short unique name."""
    models = model if isinstance(model, list) else [model]
    adapters = adapter if isinstance(adapter, list) else ([adapter] if adapter else [])
    found = [{"model": m, "adapter": None} for m in models] + [{"model": models[0], "adapter": a} for a in adapters]
    for index, variant in enumerate(found):
        path = Path(variant["adapter"] or variant["model"].removeprefix("builtin:"))
        # an export's folder is named for its kind (runs/anna/export/merged): the run's name says more
        label = next((part for part in reversed(path.parts) if part not in GENERIC_NAMES), path.name) or "model"
        variant["name"] = f"{chr(ord('A') + index)}_{label}" if len(found) > 1 else label
    return found


def check_lengths(utterances: list[dict], collator, model_config, max_new_tokens: int) -> None:
    """Every prompt and its generation fit the model's positions; else one line naming the first that does not."""
    from higgs_train.data.collator import GENERATION_PROMPT

    limit = model_config.max_position_embeddings
    too_long = []
    for utterance in utterances:
        positions = collator.count_positions(utterance["messages"]) + len(collator._tokenize(GENERATION_PROMPT))
        if positions + max_new_tokens > limit:
            too_long.append((utterance["id"], positions))
    if too_long:
        (utt, positions), more = too_long[0], len(too_long) - 1
        raise ArgumentError(f"utterance {utt}{f' (and {more} more)' if more else ''}: its prompt has {positions} "
                            f"positions, and with max_new_tokens={max_new_tokens} it needs more than the model's "
                            f"{limit}; use a shorter prompt clip or lower max_new_tokens")


def evaluate_model(model, processor, utterances: list[dict], eval_cfg, out_dir: Path, judges) -> list[dict]:
    """Per-utterance records (every metric its judges allow) of one model on the list, wavs in `out_dir`. Prompt
    clips are encoded here unless the utterances already carry their codes (`run` encodes them once per list)."""
    from higgs_train.data.audio_codes import attach_codes
    from higgs_train.data.collator import ConversationCollator
    from higgs_train.evaluate.samples import write_samples

    utterances = copy.deepcopy(utterances)
    with quiet_progress():
        attach_codes(utterances, processor.audio_tokenizer)
    collator = ConversationCollator(processor.tokenizer, model.config)
    check_lengths(utterances, collator, model.config, eval_cfg.max_new_tokens)
    records, _ = write_samples(model, processor.audio_tokenizer, collator, utterances, eval_cfg, out_dir, judges)
    return records


def utterance_columns() -> list[str]:
    """utterances.csv's columns: every metric of the registry (and its facts), in its order."""
    from higgs_train.evaluate.metrics import METRICS

    return ["variant", "id", "text", "frames", *(key for m in METRICS.values() for key in (m.name, *m.facts)), "path"]


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=utterance_columns(), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run(args: dict) -> dict:
    """Evaluates every variant, writes the outputs, returns the summary; one evaluation at a time writes an out."""
    from higgs_train.runtime.run_lock import hold_output

    with hold_output(args["out"], "out="):
        return _run(args)


def _run(args: dict) -> dict:
    import torch

    from higgs_train.builtins import assets
    from higgs_train.data.audio_codes import attach_codes
    from higgs_train.data.code_cache import tokenizer_fingerprint
    from higgs_train.evaluate.comparison import compare
    from higgs_train.evaluate.eval_lists import load_test_list
    from higgs_train.evaluate.eval_page import write_eval_page
    from higgs_train.evaluate.judges import Judges
    from higgs_train.evaluate.metrics import METRICS, not_measured, summarize
    from higgs_train.model.loading import load_for_inference
    from higgs_train.runtime import atomic, ownership
    from higgs_train.runtime.logs import logger

    out = Path(args["out"])
    ownership.check_replaceable(out, "eval", "out=")
    utterances = load_test_list(assets.resolve(args["list"]))
    if args["limit"]:
        utterances = utterances[: args["limit"]]
    eval_cfg = check_tool_settings(args, EVAL_KEYS)
    judges = Judges.load(eval_cfg)
    for key, setting in zip(JUDGE_KEYS, JUDGE_SETTINGS):
        if args[key] and not judges.loaded(setting):  # asked for by name: a run without it is not the one asked for
            raise ArgumentError(f"{key}={args[key]} cannot be used (the notice above says why); give a checkpoint "
                                f"of that kind, or leave {key} out")
    device = torch.device(args["device"] if args["device"] != "auto" else "cuda" if torch.cuda.is_available()
                          else "cpu")
    with atomic.atomic_output(out) as partial:
        partial.mkdir()
        found, rows = variants(args["model"], args["adapter"]), []
        encoded = {}  # tokenizer fingerprint -> the utterances with their prompt codes: each list encoded once
        for variant in found:
            logger.info(f"{variant['name']}: {variant['model']}" + (f" + {variant['adapter']}" if variant["adapter"]
                                                                    else "") + f", {len(utterances)} utterances")
            model, processor = load_for_inference(assets.resolve(variant["model"]), variant["adapter"], device)
            fingerprint = tokenizer_fingerprint(processor.audio_tokenizer)
            if fingerprint not in encoded:
                encoded[fingerprint] = copy.deepcopy(utterances)
                with quiet_progress():
                    attach_codes(encoded[fingerprint], processor.audio_tokenizer)
            variant["records"] = evaluate_model(model, processor, encoded[fingerprint], eval_cfg,
                                                partial / variant["name"], judges)
            for record in variant["records"]:
                record["path"] = str(out / Path(record["path"]).relative_to(partial))
            rows += [{"variant": variant["name"], **record} for record in variant["records"]]
            del model
        summary = {"list": args["list"], "utterances": len(utterances), "judges": judges.names(),
                   "not_measured": not_measured(judges, setting_prefix=""),  # higgs-eval's keys: asr_model=
                   "settings": asdict(eval_cfg),
                   "metrics": {m.summary: m.doc for m in METRICS.values()},
                   "variants": [{"name": v["name"], "model": v["model"], "adapter": v["adapter"],
                                 "summary": summarize(v["records"])} for v in found],
                   "comparisons": [{"variant": v["name"], "against": found[0]["name"],
                                    "metrics": compare(found[0]["records"], v["records"], eval_cfg.seed)}
                                   for v in found[1:]]}
        _write_csv(partial / "utterances.csv", rows)
        (partial / "summary.json").write_text(json.dumps(summary, indent=2))
        write_eval_page(partial, summary, found)
        ownership.mark(partial, "eval", record_files=True, list=args["list"])
    _say(summary, out)
    return summary


def _say(summary: dict, out: Path) -> None:
    from higgs_train.evaluate.metrics import METRICS
    from higgs_train.runtime.logs import logger

    for variant in summary["variants"]:  # each metric of the registry it has, or why it has none
        values = ", ".join(f"{m.summary} {variant['summary'][m.summary]:.3g}" if m.summary in variant["summary"] else
                           f"{m.summary} {summary['not_measured'][m.name]}" for m in METRICS.values()
                           if m.summary in variant["summary"] or m.name in summary["not_measured"])
        unscored = variant["summary"].get("wer_unscored")
        logger.info(f"{variant['name']}: {values}" + (f" ({unscored} transcripts with no words: no WER, see "
                                                       "wer_error in utterances.csv)" if unscored else ""))
    for comparison in summary["comparisons"]:
        verdicts = "; ".join(f"{k}: {row['verdict']}" for k, row in comparison["metrics"].items())
        logger.info(f"{comparison['variant']} vs {comparison['against']}: {verdicts}")
    logger.info(f"wrote {out / 'report.html'}, {out / 'summary.json'} and {out / 'utterances.csv'}")


def check(argv: list[str]) -> dict:
    args = parse(argv, _defaults(), required=("model", "list"), lists=("model", "adapter"), types=EVAL_TYPES)
    check_tool_settings(args, EVAL_KEYS)
    return args


def main() -> None:
    run_tool("higgs-eval", USAGE, run, check)


def console() -> None:
    """The `higgs-eval` command (evaluation quantizes nothing)."""
    hide_bitsandbytes()
    main()


if __name__ == "__main__":
    console()
