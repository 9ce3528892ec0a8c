"""`python -m higgs_train.launch [NAME]`: the path of a shipped launch file, for
`accelerate launch --config_file "$(python -m higgs_train.launch zero2)" -m higgs_train.commands.train ...`; without
NAME, all."""

from __future__ import annotations

import sys

from higgs_train.launch import LAUNCH_DIR, launch_files


def main(argv: list[str]) -> int:
    files = launch_files()
    if not argv:
        for name, path in files.items():
            print(f"{name:15} {path}")
        print(f"(what each one does: {LAUNCH_DIR / 'README.md'})")
        return 0
    if argv[0] not in files:
        print(f"higgs_train.launch: error: no launch file {argv[0]!r}; use one of {sorted(files)}", file=sys.stderr)
        return 2
    print(files[argv[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
