"""Shared fixtures: one tiny checkpoint and one demo dataset per test session, in a private cache, offline."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (a failure replays) and keep no example database in the tree.
settings.register_profile("seeded", derandomize=True, database=None)
settings.load_profile("seeded")

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist runs one worker per core (pyproject's addopts): each worker, and the runs it starts, on one thread,
# since the tiny kit's small matrices gain nothing from a second thread that another worker needs.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Built-in assets go to a fresh folder (also for CLI subprocesses), never to the user's cache."""
    os.environ["HIGGS_TRAIN_CACHE"] = str(tmp_path_factory.mktemp("higgs-cache"))
    yield


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each in-process run gets its own Accelerate state (one process otherwise keeps the first run's precision)."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def tiny_checkpoint(private_cache):
    from higgs_train.builtins.assets import ensure_builtin

    return ensure_builtin("tiny")


@pytest.fixture(scope="session")
def demo_dir(private_cache, tiny_checkpoint):
    """The demo data with every clip's codes already cached for the tiny kit, so the tests that train on it only
    read this shared folder (tests that write copy it first)."""
    from data_prep.encode import encode_dataset
    from higgs_train.builtins.assets import ensure_builtin
    from higgs_train.model.loading import load_audio_tokenizer

    folder = ensure_builtin("demo")
    encode_dataset(folder / "train.jsonl", load_audio_tokenizer(str(tiny_checkpoint)))
    return folder


@pytest.fixture(scope="session")
def processor(tiny_checkpoint):
    from higgs_train.model.loading import load_processor

    return load_processor(str(tiny_checkpoint))


@pytest.fixture(scope="session")
def model_config(tiny_checkpoint):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="session")
def demo_rows(demo_dir):
    from higgs_train.data.conversations import load_rows

    return load_rows(demo_dir / "train.jsonl")


@pytest.fixture(scope="session")
def data_cfg_factory():
    """A `data` config node like configs/data/jsonl.yaml for `path`, with overrides."""
    from omegaconf import OmegaConf

    from higgs_train.config.files import CONFIG_DIR

    def make(path, **overrides):
        return OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "data" / "jsonl.yaml"), {"path": str(path), **overrides})

    return make


@pytest.fixture(scope="session")
def demo_task(demo_dir, processor, model_config, data_cfg_factory):
    """`demo_task(task, seed=0)`: the demo set's conversations of a task, built from its training table as training
    builds them (a list: each conversation with its codes)."""
    from higgs_train.data.collator import ConversationCollator
    from higgs_train.data.loader import task_conversations

    collator = ConversationCollator(processor.tokenizer, model_config)

    def conversations(task, seed=0):
        data = demo_dir / "train.jsonl"
        dataset, _ = task_conversations(data, data_cfg_factory(data), task, seed, collator, processor.audio_tokenizer)
        return [dataset[i] for i in range(len(dataset))]

    return conversations


@pytest.fixture
def eval_cfg_factory():
    """An `eval` config node like configs/eval/default.yaml, with overrides."""
    from omegaconf import OmegaConf

    from higgs_train.config.files import CONFIG_DIR

    def make(**overrides):
        return OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "eval" / "default.yaml"), overrides)

    return make


@pytest.fixture
def compose_config():
    """The config `higgs-train` would run for these command-line overrides."""
    from higgs_train.config.files import compose_config as compose

    return lambda *overrides: compose(overrides)


@pytest.fixture(scope="module")
def inputs(tiny_checkpoint, demo_rows):
    """A real batch of two demo rows as model inputs (text and audio positions), so the audio path and the audio
    head are exercised."""
    from transformers import AutoConfig, AutoProcessor

    from higgs_train.data.audio_codes import attach_codes
    from higgs_train.data.collator import ConversationCollator
    from higgs_train.model.loss import MODEL_INPUTS

    rows = [dict(r) for r in demo_rows[:2]]
    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    attach_codes(rows, processor.audio_tokenizer)
    batch = ConversationCollator(processor.tokenizer, AutoConfig.from_pretrained(tiny_checkpoint))(rows)
    return {k: v for k, v in batch.items() if k in MODEL_INPUTS}
