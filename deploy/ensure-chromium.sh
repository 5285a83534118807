#!/usr/bin/env bash
# Debian's chromium for the browser tests (the timeline report's chart), installed once.
# Idempotent: does nothing when /usr/bin/chromium is there; never downloads a browser build
# of its own (Playwright drives this one). Needs root for apt-get; otherwise says what to run.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-chromium: /usr/bin/chromium is missing; run as root: apt-get install -y chromium" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
