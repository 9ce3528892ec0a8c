"""higgs-train: fine-tune Higgs Audio V2. The commands are `higgs-train`, `higgs-prep`, `higgs-export`,
`higgs-generate` and `higgs-eval`; from Python, `finetune` and `speak` (higgs_train/commands/api.py), imported on
first use
so that the commands start without the libraries they do not need."""


def __getattr__(name: str):
    if name in ("finetune", "speak"):
        from higgs_train.commands import api

        return getattr(api, name)
    raise AttributeError(f"module 'higgs_train' has no attribute {name!r}")
