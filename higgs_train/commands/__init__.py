"""The commands: `higgs-train`, `higgs-export`, `higgs-generate`, `higgs-eval`, the dry run and the Python API. Each
reads what the user typed, checks it before anything heavy loads, and hands typed values to the library below."""
