"""`make bench`: run every benchmark, print its figures, write bench/results/latest.json."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from bench import queue_host
from local.azurite import start_azurite

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    azurite = start_azurite()
    figures: dict[str, dict[str, float]] = {}
    try:
        print("queue host: pickup latency after idling (against maxPollingInterval) ...", flush=True)
        figures["queue_pickup"] = queue_host.pickup_latency(azurite)
        print(f"  {figures['queue_pickup']}", flush=True)
        print("queue host: throughput with host.json batching (against batchSize 1) ...", flush=True)
        figures["queue_throughput"] = queue_host.throughput(azurite)
        print(f"  {figures['queue_throughput']}", flush=True)
    finally:
        azurite.stop()
    RESULTS.mkdir(exist_ok=True)
    out = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": platform.python_version(),
           "figures": figures}  # fmt: skip
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    pickup = figures["queue_pickup"]["pickup_worst_over_limit"]
    speedup = figures["queue_throughput"]["throughput_over_baseline"]
    print(f"\npickup worst / maxPollingInterval = {pickup:.2f} (limit 1.00)")
    print(f"throughput / batchSize-1 baseline = {speedup:.2f}x")
    print(f"written to {RESULTS / 'latest.json'}")
    return 0 if pickup <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
