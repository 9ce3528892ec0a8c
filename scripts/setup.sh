#!/usr/bin/env bash
# One-step set-up of higgs-train in ./.venv: espeak-ng (demo speech), torch, the package, and a torchaudio that imports.
#   --dev        also chromium (the tests open report.html and drive higgs-studio in a headless browser)
# The studio extra (gradio: `.venv/bin/higgs-studio`) is always installed, as the test extras are.
#   TORCH_SPEC   what to install as torch first (default torch==2.13.0, the CPU wheel on this kind of machine;
#                on a CUDA machine install your CUDA torch + matching torchaudio yourself, or set TORCH_SPEC).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
if ! command -v espeak-ng >/dev/null; then
  echo "setup: installing espeak-ng (demo speech data)"
  $as_root apt-get update -qq && $as_root apt-get install -y -qq espeak-ng >/dev/null
fi
# --dev: also what the tests need beyond Python: chromium, to open report.html in a real headless browser.
if [ "${1:-}" = "--dev" ] && ! command -v chromium >/dev/null; then
  echo "setup: installing chromium (the report.html test)"
  $as_root apt-get update -qq && $as_root apt-get install -y -qq chromium >/dev/null
fi

[ -x .venv/bin/python ] || { echo "setup: creating .venv"; python3 -m venv .venv; }
pip=".venv/bin/python -m pip"
# torch first, so nothing later resolves an unpinned torch to a multi-GB CUDA download.
echo "setup: installing ${TORCH_SPEC:-torch==2.13.0} (the longest stage on a new machine)"
$pip install -q "${TORCH_SPEC:-torch==2.13.0}"
echo "setup: installing higgs-train and its dependencies (transformers, peft, accelerate, datasets, gradio, ...)"
$pip install -q -e ".[dev,studio]"

# The audio tokenizer imports torchaudio (it only calls the pure-Python functional.resample). PyPI's torchaudio is a
# CUDA build: beside a CPU torch its compiled extensions cannot load, so they are removed and the Python part stays.
if ! .venv/bin/python -c "import torchaudio" 2>/dev/null; then
  echo "setup: installing torchaudio (its Python part: the audio tokenizer resamples with it)"
  $pip install -q --no-deps "torchaudio==2.11.0"
  if ! .venv/bin/python -c "import torchaudio" 2>/dev/null; then
    rm -f "$(.venv/bin/python -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec("torchaudio").origin))')"/lib/*.so
  fi
fi
.venv/bin/python -c "import torchaudio.functional, transformers; print('setup: ok, transformers', transformers.__version__, end='')"
echo " ($((SECONDS - started)) s)"
