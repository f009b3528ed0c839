#!/usr/bin/env bash
# Retrain the throughput predictor: bash models/train.sh [--traces DIR] [--seed N]
# Makes the venv at .venv/models on first use, with the versions pinned in
# models/requirements.txt, then runs models/train.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$root/.venv/models"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
# Cheap when already satisfied; keeps an old venv in step with the pins.
"$venv/bin/pip" install --quiet -r "$here/requirements.txt"
exec "$venv/bin/python" "$here/train.py" "$@"
