#!/usr/bin/env bash
# Entry point of the compose stack's ray-head: start Ray, start Serve where the AI
# worker calls it, deploy the application, then stay in the foreground while Ray runs
# so that compose notices (and restarts the container) if it dies.
set -euo pipefail

# Ports above 20000, as everywhere in this repository: Ray refuses its worker range.
ray start --head --port=26379 --dashboard-host=0.0.0.0 --dashboard-port=28265 \
  --disable-usage-stats

# Serve's HTTP options are fixed when Serve starts; the config's own host and port
# (127.0.0.1:28000) suit a laptop without containers, not a compose network.
serve start --http-host 0.0.0.0 --http-port 8000 --proxy-location HeadOnly
serve deploy ray_serve/serve_config.yaml --address http://127.0.0.1:28265

trap 'ray stop; exit 0' TERM INT
while ray status --address 127.0.0.1:26379 > /dev/null 2>&1; do
  # Backgrounded so that a stop signal interrupts the wait at once.
  sleep 30 &
  wait $!
done
echo "Ray is no longer running" >&2
exit 1
