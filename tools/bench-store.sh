#!/usr/bin/env bash
# Store and API benchmarks against the etcd anchor, in one run on this machine:
# a 3-master `ferry up` cluster and a 3-member etcd 3.4 (../shared/tools/etcd-anchor),
# the same load (sequential puts of distinct keys, 256-byte values), one after the other,
# each round on fresh clusters of both (ferry, then etcd);
# then `ferry bench api` (32000 ConfigMap creates through the whole API pipeline, as many
# operations as the anchor's run) at 64 clients,
# compared with the anchor's raw puts at 64 clients.
#
#   bash tools/bench-store.sh [ROUNDS]     (default 1 round of each)
#
# Prints every summary line and, at the end, the ratios ferry/etcd.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
anchor=${ETCD_ANCHOR:-../shared/tools/etcd-anchor}
cargo build --release -q
ferry=${CARGO_TARGET_DIR:-target}/release/ferry
dir=$(mktemp -d /tmp/ferry-bench.XXXXXX)
port=${FERRY_BENCH_PORT:-27100}
cleanup() { [ -n "${up:-}" ] && kill "$up" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
results=()
for r in $(seq 1 "$rounds"); do
  # A fresh cluster per round, as etcd-anchor starts a fresh etcd cluster per run.
  rm -rf "$dir/up"
  HOME=$dir $ferry up --dir "$dir/up" --port "$port" > "$dir/up.log" 2>&1 &
  up=$!
  for _ in $(seq 1 240); do grep -q "is up" "$dir/up.log" && break; sleep 0.5; done
  grep -q "is up" "$dir/up.log" || { cat "$dir/up.log"; exit 1; }
  results+=("$($ferry --config "$dir/up/admin.conf" bench store --clients 1 --ops 2000 | tail -1)")
  results+=("$($ferry --config "$dir/up/admin.conf" bench store --clients 64 --ops 32000 | tail -1)")
  results+=("$($ferry --config "$dir/up/admin.conf" bench api --clients 64 --objects 32000 | tail -1)")
  kill "$up"; wait "$up" 2>/dev/null || true; up=
  results+=("$($anchor --clients 1 --ops 2000 | tail -1)")
  results+=("$($anchor --clients 64 --ops 32000 | tail -1)")
done
printf '%s\n' "${results[@]}"
python3 - "${results[@]}" <<'PY'
import sys, collections
rows = collections.defaultdict(list)
for line in sys.argv[1:]:
    kind, *kv = line.split()
    f = dict(x.split("=") for x in kv)
    rows[(kind, int(f["clients"]))].append({k: float(v) for k, v in f.items()})
def best(kind, c):  # median of rounds
    xs = sorted(rows[(kind, c)], key=lambda r: r["ops_per_s"])
    return xs[len(xs) // 2]
for c in (1, 64):
    s, e = best("store", c), best("etcd", c)
    print(f"clients={c}: ferry/etcd ops_per_s={s['ops_per_s']/e['ops_per_s']:.2f}x "
          f"p50 {s['p50_us']:.0f}us vs {e['p50_us']:.0f}us, p99 {s['p99_us']:.0f}us vs {e['p99_us']:.0f}us")
a, e = best("api", 64), best("etcd", 64)
print(f"api clients=64: ferry api creates/etcd puts ops_per_s={a['ops_per_s']/e['ops_per_s']:.2f}x "
      f"p50 {a['p50_us']:.0f}us, p99 {a['p99_us']:.0f}us (target: p99 < 100000us, ratio >= 2x)")
PY
