"""The training data of a run, built one way for training and for the dry run; batch order is a function of
(seed, epoch) alone, which exact resume relies on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from higgs_train.data.collator import ConversationCollator
from higgs_train.data.sampler import FixedSizeBatchSampler, TokenBudgetBatchSampler
from higgs_train.data.source import DataPlan
from higgs_train.data.table_build import open_table
from higgs_train.data.task_data import TaskDataset, task_dataset
from higgs_train.data.tasks import check_task


def build_dataloader(dataset: TaskDataset, collator, trainer, seed: int):
    """Random fixed-size batches, or token-budget batches (bucketed, or packed with `trainer.packing`), drawn from
    `seed`. Returns (dataloader, sampler)."""
    if trainer.max_tokens_per_batch is None:
        sampler = FixedSizeBatchSampler(len(dataset), trainer.batch_size, seed)
    else:
        sampler = TokenBudgetBatchSampler(dataset.lengths.tolist(), trainer.max_tokens_per_batch,
                                          mode="pack" if trainer.packing else "bucket", seed=seed)
    # A private generator: starting an epoch's iterator draws a seed from it, never from the global RNG that
    # dropout uses, so the RNG stream does not depend on where in an epoch a run was resumed.
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, num_workers=trainer.num_workers,
                        generator=torch.Generator().manual_seed(seed))
    return loader, sampler


@dataclass
class TrainingData:
    """Everything the run reads: the collator, the table, the training and validation examples (validation and the
    evaluation's samples read conversations), what was left out, the training loader with its sampler (whose
    epoch the batch stream sets), and where the audio codes came from."""

    collator: ConversationCollator
    table: object
    training: object
    validation: object
    skipped: dict
    dataloader: DataLoader
    sampler: object
    clips: dict

    @property
    def prompt_pool(self) -> TaskDataset:
        """Where evaluation samples take their prompts: the held-out conversations, which the model has not learnt
        by heart, else the training ones."""
        return self.validation if len(self.validation) else self.training



def task_conversations(data_path: str | Path, data_cfg, task: str, seed: int, collator,
                       audio_tokenizer) -> tuple[TaskDataset, dict]:
    """The task's conversations over the training table of the data at `data_path` (built first when missing), and
    what was left out."""
    check_task(task)
    return task_dataset(open_table(data_path, data_cfg, audio_tokenizer), task, seed, collator,
                        data_cfg)


def build_training_data(plan: DataPlan, processor, model_config) -> TrainingData:
    """The conversations of `plan.source` (resolved at the run's start); the audio tokenizer is already on its
    device."""
    collator = ConversationCollator(processor.tokenizer, model_config, packing=plan.trainer.packing)
    conversations, skipped = task_conversations(plan.source.path, plan.data, plan.task, plan.seed, collator,
                                                processor.audio_tokenizer)
    training, validation = conversations.split(plan.val_size, plan.seed)
    dataloader, sampler = build_dataloader(training, collator, plan.trainer, plan.seed)
    table = conversations.table  # where the codes came from: the cache or the tokenizer when built just now
    clips = table.info["codes"] if table.built else {"table": table.info["clips"]}
    return TrainingData(collator, table, training, validation, skipped, dataloader, sampler, clips)
