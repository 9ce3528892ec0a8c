"""A hub id asked for where the Hub is out of reach: answered at once, in one line, instead of after
huggingface_hub's ten "Retrying in 8s" lines (34 s). One quick request tells; a checkpoint already in the local
cache then loads offline, and one that is not is refused with what to do."""

from __future__ import annotations

import re
from pathlib import Path

from higgs_train.runtime.errors import UserError

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
PROBE_TIMEOUT_S = 5.0


class HubOutOfReach(UserError):
    """A hub id that is neither a folder, nor in the local cache, nor reachable."""


def hub_unreachable() -> str | None:
    """Why the Hub does not answer (one try, no retries), or None when it answers anything at all."""
    from huggingface_hub import constants, get_session

    try:
        get_session().head(f"{constants.ENDPOINT}/api/models", timeout=PROBE_TIMEOUT_S)
    except Exception as error:  # whatever the HTTP library raises for no route, no name, refused or timed out
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no answer'}"
    return None


def go_offline_unless_reachable(name_or_path: str) -> None:
    """For a hub id: nothing when the Hub answers; offline mode when it does not and the id is cached; else
    HubOutOfReach, before any download is tried."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or Path(name_or_path).exists() or not HUB_ID.match(name_or_path):
        return
    why = hub_unreachable()
    if why is None:
        return
    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        constants.HF_HUB_OFFLINE = True  # what huggingface_hub and Transformers read: the cached files, no request
        return
    raise HubOutOfReach(f"cannot load {name_or_path!r}: the Hugging Face Hub is out of reach ({why}) and it is not "
                        "in the local cache; download it elsewhere and point at the folder (or builtin:tiny, the "
                        "built-in test checkpoint)")
