"""`higgs-studio [--root DIR] [--host 127.0.0.1] [--port 7860] [--auth USER:PASSWORD] [--max-upload-mb 200]`: the
studio on this machine, offline. It binds 127.0.0.1 unless told otherwise, and serving another address needs
--auth. Every path it takes and every file it serves lies inside --root (default: this folder)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="higgs-studio", description=__doc__.split("`: ", 1)[1].strip())
    parser.add_argument("--root", default=".", help="the folder the studio may read, write and serve (default: .)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--auth", default=None, help="USER:PASSWORD, required when --host is not this machine")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (default 200)")
    return parser


def offline_environment(root: Path) -> None:
    """No analytics or version checks, and gradio's file cache inside the root (the only files it serves)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["GRADIO_TEMP_DIR"] = str(root / ".studio" / "gradio")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    auth = None
    if args.auth is not None:
        user, sep, password = args.auth.partition(":")
        if not (sep and user and password):
            sys.exit("higgs-studio: error: --auth must be USER:PASSWORD, both non-empty")
        auth = (user, password)
    if args.host not in LOCAL_HOSTS and auth is None:
        sys.exit(f"higgs-studio: error: --host {args.host} serves the studio to other machines; add "
                 "--auth USER:PASSWORD (or bind 127.0.0.1)")
    from higgs_train.runtime.errors import UserError
    from higgs_train.studio.paths import Root

    try:
        root = Root(args.root).folder
    except UserError as error:
        sys.exit(f"higgs-studio: error: {error}")
    offline_environment(root)
    os.chdir(root)  # the commands it runs and shows are relative to the root

    from higgs_train.studio.app import build_app

    app, _ = build_app(root)
    app.queue().launch(server_name=args.host, server_port=args.port, auth=auth, allowed_paths=[str(root)],
                       max_file_size=int(args.max_upload_mb * 1024 * 1024), ssr_mode=False, share=False,
                       inbrowser=False)


if __name__ == "__main__":
    main()
