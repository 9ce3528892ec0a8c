"""The run's config as typed objects: one dataclass per config group (its fields' types, defaults, one-line help and
checks), registered in Hydra's ConfigStore as the schema the YAML files in configs/ and recipes/ compose over.

`run_config(composed)` turns Hydra's composed config into a checked `RunConfig` (every field's and group's check
runs as its object is made), then checks what this machine and launch can honour; a bad value is one line naming
the key and what is allowed, before any weight loads. Only Hydra/OmegaConf are imported here, so `--help` and config
mistakes answer at once.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from higgs_train.config.checks import ConfigError
from higgs_train.config.environment import check_environment
from higgs_train.config.run import RunConfig

__all__ = ["ConfigError", "RunConfig", "run_config", "typed", "as_dict"]


def run_config(composed: DictConfig) -> RunConfig:
    """The composed config as checked objects, refused in one line where a value or this machine cannot train."""
    from higgs_train.model.hub import go_offline_unless_reachable

    run = OmegaConf.to_object(composed)
    check_environment(run.model, run.optim, run.trainer, run.logger)
    go_offline_unless_reachable(run.model.name_or_path)  # an offline hub id: one line now, not ten retries later
    return run


def typed(cfg: DictConfig | RunConfig) -> RunConfig:
    """A run's config as checked objects, whether it comes composed (Hydra, the tests) or already typed."""
    return cfg if isinstance(cfg, RunConfig) else run_config(cfg)


def as_dict(run: RunConfig) -> dict:
    """The run's settings as plain data, as the run directory and checkpoints record them."""
    return OmegaConf.to_container(OmegaConf.structured(run))
