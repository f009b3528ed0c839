#!/usr/bin/env bash
# Creates the moto (AWS emulator) venv used by the AWS contract tests and the infra tier (moto's
# CloudFormation, and cfn-lint for fedflow's templates). Idempotent: if the venv
# already has the pinned version, it does nothing. The version is pinned so the emulator's
# behaviour (which EC2 calls it supports, how it answers) cannot change under the tests.
set -euo pipefail

MOTO_VERSION="5.2.5"
# cfn-lint comes with moto[server] (its CloudFormation support parses templates with it); pinned
# here because the infra tier lints fedflow's CloudFormation templates with it.
CFN_LINT_VERSION="1.58.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FEDFLOW_MOTO_VENV:-$ROOT/.venv/moto}"
PY="${PYTHON:-python3}"

installed_version() {
  "$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true
}

if [ -x "$VENV/bin/python" ] && [ "$(installed_version moto)" = "$MOTO_VERSION" ] && [ -x "$VENV/bin/moto_server" ] \
  && [ "$(installed_version cfn-lint)" = "$CFN_LINT_VERSION" ] && [ -x "$VENV/bin/cfn-lint" ]; then
  echo "moto $MOTO_VERSION and cfn-lint $CFN_LINT_VERSION already installed in $VENV"
  exit 0
fi

echo "creating moto $MOTO_VERSION venv in $VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION"
echo "moto $(installed_version moto) and cfn-lint $(installed_version cfn-lint) installed in $VENV"
