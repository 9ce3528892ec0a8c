"""The training data of a run, built one way for training and for the dry run; batch order is a function of
(seed, epoch) alone, which exact resume relies on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from higgs_train.data.collator import ConversationCollator
from higgs_train.data.sampler import FixedSizeBatchSampler, TokenBudgetBatchSampler
from higgs_train.data.table import open_table
from higgs_train.data.task_data import TaskDataset, task_dataset
from higgs_train.data.tasks import check_task


def build_dataloader(dataset: TaskDataset, collator, cfg: DictConfig):
    """Random fixed-size batches, or token-budget batches (bucketed, or packed with `trainer.packing`).
    Returns (dataloader, sampler)."""
    if cfg.trainer.max_tokens_per_batch is None:
        sampler = FixedSizeBatchSampler(len(dataset), cfg.trainer.batch_size, cfg.seed)
    else:
        sampler = TokenBudgetBatchSampler(dataset.lengths.tolist(), cfg.trainer.max_tokens_per_batch,
                                          mode="pack" if cfg.trainer.packing else "bucket", seed=cfg.seed)
    # A private generator: starting an epoch's iterator draws a seed from it, never from the global RNG that
    # dropout uses, so the RNG stream does not depend on where in an epoch a run was resumed.
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, num_workers=cfg.trainer.num_workers,
                        generator=torch.Generator().manual_seed(cfg.seed))
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



def task_conversations(data_cfg: DictConfig, task: str, seed: int, collator, audio_tokenizer,
                       show_progress: bool = True) -> tuple[TaskDataset, dict]:
    """The task's conversations over the data's training table (built first when missing), and what was left out."""
    check_task(task)
    return task_dataset(open_table(data_cfg, audio_tokenizer, show_progress), task, seed, collator, data_cfg,
                        show_progress)


def build_training_data(cfg: DictConfig, data_path: str, processor, model_config,
                        show_progress: bool = True) -> TrainingData:
    """`data_path` is `cfg.data.path` resolved (built-in data made); the audio tokenizer is already on its device."""
    collator = ConversationCollator(processor.tokenizer, model_config, packing=cfg.trainer.packing)
    conversations, skipped = task_conversations(DictConfig({**cfg.data, "path": data_path}), cfg.task.name, cfg.seed,
                                                collator, processor.audio_tokenizer, show_progress)
    training, validation = conversations.split(cfg.eval.val_size, cfg.seed)
    dataloader, sampler = build_dataloader(training, collator, cfg)
    table = conversations.table  # where the codes came from: the cache or the tokenizer when built just now
    clips = table.info["codes"] if table.built else {"table": table.info["clips"]}
    return TrainingData(collator, table, training, validation, skipped, dataloader, sampler, clips)
