#!/usr/bin/env bash
# Redis for `make run`: reuse one already answering on REDIS_URL's port, else run our own under instance/.
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(python3 -c "import os,urllib.parse as u; print(u.urlparse(os.environ.get('REDIS_URL','redis://127.0.0.1:6379/0')).port or 6379)")
if redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "redis: using the server already answering on port $port"
  exec tail -f /dev/null
fi
mkdir -p instance/redis
exec redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/instance/redis" --save 60 1 --appendonly no
