#!/usr/bin/env bash
# System packages the end-to-end tests use: Debian's chromium (the Dagster UI browser test) and postgresql
# (the Postgres instance-storage test). Installed only when missing, as root with apt; anywhere else the
# script says so and those tests skip with the reason.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  echo "setup-system: chromium and postgresql present"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: cannot install ${need[*]} (needs root and apt-get); their tests will skip"
  exit 0
fi
echo "setup-system: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
  echo "setup-system: apt could not install ${need[*]}; their tests will skip (the rest of CI is unaffected)"
  exit 0
fi
# the package may start a cluster of its own: the tests start their own on a free port
if command -v service >/dev/null 2>&1; then service postgresql stop >/dev/null 2>&1 || true; fi
