#!/usr/bin/env bash
# Train the leave-one-dataset-out models that `npm run eval -- predictor` scores:
# one per dataset of ../shared/traces, each trained on every other dataset plus the
# synthetic traces, written to models/loo/<dataset>/predictor.onnx with its summary.
#     bash models/train-loo.sh [--traces DIR] [--seed N]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for d in pensieve-fcc-hsdpa/train pensieve-fcc-hsdpa/test norway-hsdpa oboe; do
  echo "== leave out $d"
  # sigma: the shipped model's choice (models/training-summary.json), chosen there on training data only.
  bash "$here/train.sh" --leave-out "$d" --sigma 0.06 "$@"
done
