#!/usr/bin/env python3
"""Where an assignment's time goes, task by task (issue 19): a farm of real binaries at debug
level, one pipeline, then each dependent task's wait split at the points the binaries log.

  python3 bench/latency_trace.py --build-dir build [--agents 2] [--slots 64]
                                 [--shape chain|line] [--tasks 100]

chain: TASKS x (build -> test), the shape of bench/run.py's burst row (every build ends at
about the same time). line: TASKS stages, each needing the one before, so one task is ready
at a time (the per-task cost with the farm not saturated): bench/run.py's assignment latency
figure, "ready commit -> spawned" below (trace() is what it calls).

The points, all on this host's clock: the dependency's end (its result applied by the
coordinator, the task's endedUs), `assignment sent` (the commit that made the task ready, and
holds its placement, is on disk, and the message leaves the coordinator's loop), `assignment
read` (the agent's gRPC thread has it), `on the loop` (the agent's loop takes it), `spawn
from` (StartExecution begins: the state that lists it is written), `spawn to` (posix_spawn
returned), `started on the loop` (the coordinator applies Started: the task's startedUs).
Debug logging costs a little on every step; compare runs with each other, not with run.py's
other figures.
"""
import argparse
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Farm, loadavg, submitted_text_id  # noqa: E402

POINT = re.compile(r"task=(\S+) attempt=\d+ (assignment sent|assignment read|assignment on the loop|"
                   r"started on the loop|spawn from=\d+)[^=]*? (?:at|to)=(\d+)")
SPAWN = re.compile(r"task=(\S+) attempt=\d+ spawn from=(\d+)")
# Each step: its name, the point it starts at, the point it ends at.
STEPS = [("dependency end -> assignment sent (commit)", "end", "assignment sent"),
         ("sent -> read by the agent's gRPC thread", "assignment sent", "assignment read"),
         ("read -> on the agent's loop", "assignment read", "assignment on the loop"),
         ("on the loop -> spawn begins (state written)", "assignment on the loop", "spawning"),
         ("spawn begins -> spawned", "spawning", "spawned"),
         ("ready commit -> spawned", "assignment sent", "spawned"),
         ("dependency end -> spawned", "end", "spawned"),
         ("dependency end -> startedUs", "end", "started on the loop")]
# What issue 19's target names: from the end of the commit that made the task ready to the
# agent's spawn of its process.
READY_TO_SPAWN = "ready commit -> spawned"


def pipeline_text(shape, n):
    if shape == "chain":
        return ("name: chain\nmatrix:\n  n: [" + ", ".join(map(str, range(n))) + "]\nstages:\n"
                '  - name: build\n    exec: ["true"]\n'
                '  - name: test\n    needs: [build]\n    exec: ["true"]\n')
    return "name: line\nstages:\n" + "".join(
        f"  - name: s{i}\n" + (f"    needs: [s{i - 1}]\n" if i else "") + '    exec: ["true"]\n'
        for i in range(n))


def trace(build_dir, agents, slots, shape, tasks, coordinator_args=()):
    """Runs the pipeline on a fresh farm at debug level. Returns (job, {step: [ms per dependent
    task]}, load average at the end)."""
    farm = Farm(build_dir, agents, slots, coordinator_args, log_level="debug")
    try:
        path = farm.pipeline_file(shape, pipeline_text(shape, tasks))
        job = farm.job(submitted_text_id(farm.run("submit", path, "--watch", check=False)))
        load = loadavg()
        farm.stop_processes()  # their logs are whole now
        points = {}
        for name in os.listdir(farm.dir):
            if name.endswith(".log"):
                with open(os.path.join(farm.dir, name)) as f:
                    for line in f:
                        m = POINT.search(line)
                        if m:
                            what = "spawned" if m.group(2).startswith("spawn") else m.group(2)
                            points.setdefault(m.group(1), {})[what] = int(m.group(3))
                        m = SPAWN.search(line)
                        if m:
                            points.setdefault(m.group(1), {})["spawning"] = int(m.group(2))
    finally:
        farm.stop()
    tasks_by_id = {t["id"]: t for t in job["tasks"]}
    gaps = {s[0]: [] for s in STEPS}
    for t in job["tasks"]:
        needs = t["spec"].get("needs")
        if not needs:
            continue
        # A build without the debug points (an older one) still gives the last line.
        p = dict(points.get(t["id"], {}))
        p["end"] = int(tasks_by_id[needs[0]]["endedUs"])
        p["started on the loop"] = int(t["startedUs"])
        for name, a, z in STEPS:
            if a in p and z in p:
                gaps[name].append((p[z] - p[a]) / 1000)
    return job, gaps, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--shape", choices=("chain", "line"), default="chain")
    ap.add_argument("--tasks", type=int, default=100)
    args = ap.parse_args()
    job, gaps, load = trace(args.build_dir, args.agents, args.slots, args.shape, args.tasks)
    print(f"{args.shape}: {args.tasks} tasks on {args.agents} x {args.slots} slots, job "
          f"{job['state']}, load {load:.2f}; ms per dependent task")
    for name, v in gaps.items():
        if v:
            print(f"  {name:44s} p50 {statistics.median(v):7.2f}  mean {statistics.mean(v):7.2f}  "
                  f"max {max(v):7.2f}  (n={len(v)})")


if __name__ == "__main__":
    main()
