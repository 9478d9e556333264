#!/usr/bin/env bash
# promtool (from Debian's prometheus package) validates every /metrics output in the tests.
set -euo pipefail
command -v promtool >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool
