"""The training data of a run, built one way for training and for the dry run; batch order is a function of
(seed, epoch) alone, which exact resume relies on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from higgs_train.data.collator import ConversationCollator
from higgs_train.data.prepare import PreparedData, prepare_conversations, split_validation
from higgs_train.data.sampler import FixedSizeBatchSampler, TokenBudgetBatchSampler


def build_dataloader(conversations: list[dict], collator, cfg: DictConfig):
    """Random fixed-size batches, or token-budget batches (bucketed, or packed with `trainer.packing`).
    Returns (dataloader, sampler)."""
    if cfg.trainer.max_tokens_per_batch is None:
        sampler = FixedSizeBatchSampler(len(conversations), cfg.trainer.batch_size, cfg.seed)
    else:
        sampler = TokenBudgetBatchSampler([c["num_positions"] for c in conversations],
                                          cfg.trainer.max_tokens_per_batch,
                                          mode="pack" if cfg.trainer.packing else "bucket", seed=cfg.seed)
    # A private generator: starting an epoch's iterator draws a seed from it, never from the global RNG that
    # dropout uses, so the RNG stream does not depend on where in an epoch a run was resumed.
    loader = DataLoader(conversations, batch_sampler=sampler, collate_fn=collator,
                        num_workers=cfg.trainer.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
    return loader, sampler


@dataclass
class TrainingData:
    """Everything the run reads: the collator, the prepared conversations split into training and validation, and
    the training loader with its sampler (whose epoch the batch stream sets)."""

    collator: ConversationCollator
    prepared: PreparedData
    training: list[dict]
    validation: list[dict]
    dataloader: DataLoader
    sampler: object


def build_training_data(cfg: DictConfig, data_path: str, processor, model_config,
                        show_progress: bool = True) -> TrainingData:
    """`data_path` is `cfg.data.path` resolved (built-in data made); the audio tokenizer is already on its device."""
    collator = ConversationCollator(processor.tokenizer, model_config, packing=cfg.trainer.packing)
    prepared = prepare_conversations(DictConfig({**cfg.data, "path": data_path}), cfg.task.name, cfg.seed, collator,
                                     processor.audio_tokenizer, show_progress=show_progress)
    training, validation = split_validation(prepared.conversations, cfg.eval.val_size, cfg.seed)
    dataloader, sampler = build_dataloader(training, collator, cfg)
    return TrainingData(collator, prepared, training, validation, dataloader, sampler)
