#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, only where missing:
# redis-server (a private one per test run), chromium (Flower's browser test) and
# prometheus (its promtool checks deploy/prometheus/; scripts/render_dashboard.py runs its server).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# what only the tests need (make demo skips them)
if [ "${PAYQ_SKIP_BROWSER:-0}" != "1" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
  echo "missing: ${need[*]}; install them with: apt-get install -y ${need[*]}" >&2
  exit 1
fi
sudo=""; [ "$(id -u)" = "0" ] || sudo="sudo"
echo "installing ${need[*]} (apt-get)" >&2
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
