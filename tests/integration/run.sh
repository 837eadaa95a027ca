#!/bin/sh
# Runs the integration suite (tests/integration/run.py). Under "make check"
# CUTOVERD and TESTBACKEND come from AM_TESTS_ENVIRONMENT; run by hand from a
# build directory, they default to the binaries relative to the current one.
here=$(cd "$(dirname "$0")" && pwd)
: "${CUTOVERD:=$(pwd)/src/cutoverd}"
: "${TESTBACKEND:=$(pwd)/tests/backend/cutover-testbackend}"
if [ ! -x "$CUTOVERD" ] && [ -x "$here/../../src/cutoverd" ]; then
	CUTOVERD=$here/../../src/cutoverd
	TESTBACKEND=$here/../backend/cutover-testbackend
fi
PYTHONDONTWRITEBYTECODE=1
export CUTOVERD TESTBACKEND PYTHONDONTWRITEBYTECODE
cd "$here" && exec python3 run.py "$@"
