"""Proof that preference tuning fixes something: from a base that does not stop (tests/runaway_base.py), DPO on
pairs of its own judged samples and GRPO on groups of them (reward: stop + duration) both make it stop at the
right length on held-out prompts of the same speakers. BENCHMARKS.md records three runs of each."""

import argparse

import pytest
from runaway_base import BASE, DPO, GRPO, TOKEN_LIMIT, TUNING, make_data, measure

from higgs_train.export import export
from higgs_train.train.recipe import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runaway(tmp_path_factory, demo_dir):
    from accelerate.state import AcceleratorState

    from higgs_train.config_files import compose_config

    work = tmp_path_factory.mktemp("proof")
    data = make_data(work, demo_dir)
    train(compose_config(["recipe=smoke", f"data.path={data['base']}", *BASE]), work / "base")
    AcceleratorState._reset_state(reset_partial_state=True)
    base = str(export(work / "base", merge=True))
    before = measure(base, None, data["held_out"], work / "before")
    assert before["stop_rate"] < 0.5, before  # the base runs on
    return work, data, base, before


def _assert_fixed(before: dict, after: dict) -> None:
    assert after["stop_rate"] >= 0.95, after
    assert 0.8 <= after["duration_ratio"] <= 1.25, after
    assert after["frame_match"] >= before["frame_match"], (before, after)


def test_dpo_on_its_own_judged_samples_makes_a_runaway_base_stop(runaway, compose_config):
    from data_prep.cli import _parser
    from data_prep.pairs import build_pairs

    work, data, base, before = runaway
    options = _parser().parse_args(["pairs", "--model", base, "--data", str(data["prompts"]), "--out",
                                    str(work / "pairs"), "--candidates", "8", "--temperature", "1.0",
                                    "--max-new-tokens", str(TOKEN_LIMIT), "--ras-win-len", "0"])
    info = build_pairs(options, show_progress=False)
    assert info["pairs"] >= 4, info
    again = build_pairs(argparse.Namespace(**{**vars(options), "out": str(work / "pairs_again")}),
                        show_progress=False)
    assert again["sampled_now"] == 0 and again["pairs"] == info["pairs"]  # the candidate cache: nothing sampled
    train(compose_config(*DPO, *TUNING, f"model.name_or_path={base}", f"data.pairs={work / 'pairs'}"),
          work / "dpo")
    _assert_fixed(before, measure(base, str(work / "dpo" / "adapter"), data["held_out"], work / "after_dpo"))


def test_grpo_on_groups_of_its_own_samples_makes_a_runaway_base_stop(runaway, compose_config):
    work, data, base, before = runaway
    summary = train(compose_config(*GRPO, *TUNING, f"model.name_or_path={base}", f"data.path={data['prompts']}"),
                    work / "grpo")
    assert summary["steps"] == 40
    _assert_fixed(before, measure(base, str(work / "grpo" / "adapter"), data["held_out"], work / "after_grpo"))
