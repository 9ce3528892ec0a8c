"""`KEY=VALUE` command lines for the small tools (`higgs-export`, `higgs-generate`), in the same style as
`higgs-train`'s overrides, but with text taken literally (`text=yes` stays the string "yes")."""

from __future__ import annotations

import sys

import yaml

from higgs_train.runtime.errors import UserError, environment_fault
from higgs_train.runtime.logs import log_to_console
from higgs_train.runtime.renamed import renamed_spelling


class ArgumentError(UserError):
    """A command-line argument the tool cannot take; the message says which and what is allowed."""


def _typed(key: str, raw: str, default, may_be_list: bool, kind: type | None = None):
    kind = kind or type(default)
    if kind in (int, float) and raw in ("null", ""):
        return None
    if kind is bool:
        if raw.lower() not in ("true", "false"):
            raise ArgumentError(f"{key}={raw!r} must be true or false")
        return raw.lower() == "true"
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ArgumentError(f"{key}={raw!r} must be a {kind.__name__}") from None
    if may_be_list and raw.startswith("["):  # e.g. reference_audio=[a.wav,b.wav]
        try:
            return [str(v) for v in yaml.safe_load(raw)]
        except yaml.YAMLError:
            raise ArgumentError(f"{key}={raw!r} is not a list like [a,b]") from None
    return None if raw in ("null", "") else raw


def parse(argv: list[str], defaults: dict, required: tuple[str, ...] = (), lists: tuple[str, ...] = (),
          types: dict | None = None) -> dict:
    """The defaults updated from `argv` (a `[a,b]` value of a key in `lists` is a list; a key in `types` is read as
    that type, null as None; a key with a number or bool default as its type; other text is taken as it is); an
    unknown key, a malformed value or a missing required key raises."""
    values = dict(defaults)
    for argument in argv:
        key, sep, raw = argument.partition("=")
        if not sep or key not in defaults:
            raise ArgumentError(f"{argument!r} is not KEY=VALUE with a known KEY; use {sorted(defaults)}")
        values[key] = _typed(key, raw, defaults[key], key in lists, (types or {}).get(key))
    missing = [key for key in required if values.get(key) in (None, "")]
    if missing:
        raise ArgumentError(f"{', '.join(missing)} must be given ({' '.join(k + '=...' for k in missing)})")
    return values


def hide_bitsandbytes() -> None:
    """For a command process that quantizes nothing (the console scripts call it; tests, which share one process
    with QLoRA tests, do not): PEFT imports bitsandbytes whenever it is installed, which takes seconds and prints a
    kernel notice on some CPUs; marked missing, it is never imported (PEFT works without it)."""
    if "bitsandbytes" not in sys.modules:
        sys.modules["bitsandbytes"] = None


def run_tool(name: str, usage: str, body, check) -> None:
    """`check(argv)` reads the arguments before any heavy library loads (a mistake is answered at once), then
    `body(args)` runs with our log lines on the console as `name: ...`; `--help` prints the usage, a user error ends
    as one line and exit 2, a full or read-only disk as one line and exit 1."""
    argv = sys.argv[1:]
    if any(a in ("-h", "--help") for a in argv):
        print(usage)
        return
    try:
        renamed = renamed_spelling(name, argv)
        if renamed:
            raise ArgumentError(renamed)
        args = check(argv)
        log_to_console(name)
        body(args)
    except UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        line = environment_fault(error, "free space there, or give another out=")
        if line is None:
            raise
        print(f"{name}: error: {line}", file=sys.stderr)
        sys.exit(1)
