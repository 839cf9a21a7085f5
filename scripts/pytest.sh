#!/usr/bin/env bash
# pytest.sh: run pytest with a Python that has it, installing pytest for the
# current user when no Python on the machine has it yet.
set -euo pipefail
for py in python3 /usr/bin/python3; do
	if command -v "$py" >/dev/null && "$py" -c 'import pytest' 2>/dev/null; then
		exec "$py" -m pytest "$@"
	fi
done
python3 -m pip install --quiet --user pytest
exec python3 -m pytest "$@"
