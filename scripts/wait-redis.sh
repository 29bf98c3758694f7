#!/usr/bin/env bash
# Block until Redis answers (honcho starts every process at once).
port=$(python3 -c "import os,urllib.parse as u; print(u.urlparse(os.environ.get('REDIS_URL','redis://127.0.0.1:6379/0')).port or 6379)")
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "redis did not answer on port $port" >&2
exit 1
