#!/usr/bin/env bash
# Starts the local Redis and PostgreSQL the tests use, when they are not already answering.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 6379; then
  echo "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || echo "could not start redis" >&2
fi
if ! port_open 5432; then
  echo "starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start \
    || echo "could not start postgresql" >&2
fi
for _ in $(seq 1 30); do
  port_open 6379 && port_open 5432 && exit 0
  sleep 1
done
echo "redis or postgresql is not answering on 127.0.0.1" >&2
exit 1
