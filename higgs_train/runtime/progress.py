"""The one progress bar every tool draws: tqdm on the main process only (other ranks of a launch, and the
processes of a shared ingest, stay silent), and silent inside `quiet_progress()`, where a bar would say nothing (the
few prompt clips an evaluation encodes). Nothing is threaded through the calls to decide it."""

from __future__ import annotations

import contextlib
import contextvars

from tqdm.auto import tqdm

from higgs_train.runtime.logs import is_main_process

_quiet = contextvars.ContextVar("quiet_progress", default=False)


def progress_bar(iterable=None, **tqdm_arguments) -> tqdm:
    return tqdm(iterable, disable=_quiet.get() or not is_main_process(), **tqdm_arguments)


@contextlib.contextmanager
def quiet_progress():
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)
