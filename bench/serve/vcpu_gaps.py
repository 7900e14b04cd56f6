#!/usr/bin/env python3
"""How long the machine takes CPUs away from a busy process, with one CPU busy and with all busy.

Each worker is pinned to one CPU and reads the monotonic clock in a tight loop; any jump of more
than 100 us between two readings is time that CPU did not run the worker. Nothing else of ours
runs meanwhile, so on an otherwise idle machine a jump is the guest kernel's own work or, when
it lasts milliseconds, the host taking the virtual CPU away. A request that is being answered on
that CPU waits the same time, whatever its priority inside the guest; this is why the serving
benchmark's p99 rises to several milliseconds as soon as training (or any busy loop, even
SCHED_IDLE in another process) keeps every CPU busy.

Usage: python3 bench/serve/vcpu_gaps.py [seconds]   (default 8; uses only the standard library)
"""

import multiprocessing as mp
import os
import sys
import time


def watch(cpu: int, seconds: float, out) -> None:
    os.sched_setaffinity(0, {cpu})
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    prev = clock()
    over_100us = over_1ms = 0
    lost = longest = 0
    while True:
        now = clock()
        gap = now - prev
        prev = now
        if gap > 100_000:
            over_100us += 1
            lost += gap
            longest = max(longest, gap)
            if gap > 1_000_000:
                over_1ms += 1
        if now > end:
            break
    out.put((cpu, over_100us, over_1ms, lost / 1e6, longest / 1e6))


def run(cpus: list[int], seconds: float) -> None:
    out = mp.Queue()
    workers = [mp.Process(target=watch, args=(c, seconds, out)) for c in cpus]
    for w in workers:
        w.start()
    rows = sorted(out.get() for _ in workers)
    for w in workers:
        w.join()
    for cpu, n100, n1, lost, longest in rows:
        share = 100 * lost / (seconds * 1e3)
        print(
            f"  cpu{cpu}: gaps > 100 us {n100:4d}, > 1 ms {n1:3d}, "
            f"lost {lost:7.1f} ms ({share:.2f}%), longest {longest:5.2f} ms"
        )


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    cpus = sorted(os.sched_getaffinity(0))
    print(f"one CPU busy ({seconds:g} s):")
    run(cpus[:1], seconds)
    print(f"all {len(cpus)} CPUs busy ({seconds:g} s):")
    run(cpus, seconds)


if __name__ == "__main__":
    main()
