#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) run; install them if missing.
# Fails loudly when a service cannot be brought up: the test suite never skips a backend.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
wait_for() {  # wait_for NAME CMD...
  local name=$1; shift
  for _ in $(seq 1 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "services: $name did not come up" >&2; return 1
}

# --- Redis --------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  echo "services: installing redis-server"; apt_install redis-server redis-tools
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting redis-server on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping
fi

# --- PostgreSQL ---------------------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "services: installing postgresql"; apt_install postgresql
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "services: starting postgresql"
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ ! -d "/etc/postgresql/$ver/main" ]; then
    as_root pg_createcluster "$ver" main >/dev/null
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  wait_for postgresql pg_isready -h 127.0.0.1 -p 5432 -q
fi
# the tests connect as the postgres role over loopback
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  echo "services: PostgreSQL on 127.0.0.1:5432 refuses user postgres without a password;" >&2
  echo "          allow trust for 127.0.0.1 in pg_hba.conf or set MIGRATRACK_TEST_POSTGRES_URL" >&2
  [ -n "${MIGRATRACK_TEST_POSTGRES_URL:-}" ] || exit 1
fi
# promtool (tests/web/test_metrics.py checks /metrics with it): from Debian's prometheus package
if ! command -v promtool >/dev/null 2>&1; then
  echo "services: installing promtool (prometheus)"; apt_install prometheus
fi
# --- Chromium (the dashboard's browser tests drive Debian's build through Playwright) -------
if [ ! -x /usr/bin/chromium ]; then
  echo "services: installing chromium"; apt_install chromium
fi
# tmux (tests/cli/test_first_hour.py reads `migratrack watch` back from a real terminal)
if ! command -v tmux >/dev/null 2>&1; then
  echo "services: installing tmux"; apt_install tmux
fi
echo "services: redis, postgresql, promtool, chromium and tmux are up"
