#!/usr/bin/env python3
"""Where the time of `submit --watch` of one `true` task goes, hop by hop (issue 19): a farm of
real binaries at debug level, N sequential `submit --watch` runs through the real CLI, then each
run split at the points the binaries log (one `should_log` check each otherwise).

  python3 bench/watch_trace.py --build-dir build [--runs 30] [--agents 2] [--slots 64]

The points, all on this host's clock: the CLI started (this script, before it runs the CLI);
`created` (the Submit is handled on the coordinator's loop: the job's createdUs); `stored` (its
commit is on disk; the answer follows); `assignment sent` (the placement's commit is on disk and
the assignment leaves the coordinator's loop); `spawned` (the agent's spawn of the task
returned); `exit on the loop` (the agent's loop has the exit); `result sent` (the agent's visible
state records the result and the Result leaves its loop); `result on the loop` (the
coordinator applies it); `published` (the commit of the result and the job's end is on
disk and the job's watchers have been handed it); the CLI exited. The farm's share is `created ->
published`; the rest is the CLI's (start-up, connecting, the request; receiving, printing and
exiting). Debug logging costs a little on every step; compare runs with each other.
"""
import argparse
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Farm, loadavg, submitted_text_id  # noqa: E402

TASK_POINT = re.compile(r"task=(\S+) attempt=\d+ (assignment sent|exit on the loop|result sent|"
                        r"result on the loop)[^=]*? at=(\d+)")
SPAWNED = re.compile(r"task=(\S+) attempt=\d+ spawn from=\d+ to=(\d+)")
JOB_POINT = re.compile(r"job=(\S+) (stored|end published) at=(\d+)")
# The farm's share of the whole: from the Submit on the coordinator's loop to the job's end
# handed to its watcher.
FARM_SHARE = "farm: created -> published"
# Each step: its name, the point it starts at, the point it ends at.
STEPS = [("CLI start -> Submit on the coordinator's loop", "cli start", "created"),
         ("created -> stored (the job's commit)", "created", "stored"),
         ("stored -> assignment sent (placement, commit)", "stored", "assignment sent"),
         ("assignment sent -> spawned", "assignment sent", "spawned"),
         ("spawned -> exit on the agent's loop", "spawned", "exit on the loop"),
         ("exit -> result sent (state recorded)", "exit on the loop", "result sent"),
         ("result sent -> on the coordinator's loop", "result sent", "result on the loop"),
         ("on the loop -> published (commit, watchers)", "result on the loop", "end published"),
         ("published -> CLI exited", "end published", "cli exit"),
         (FARM_SHARE, "created", "end published"),
         ("whole: CLI start -> CLI exited", "cli start", "cli exit")]


def trace(build_dir, runs, agents, slots):
    """Returns ({step: [ms per run]}, load average at the end)."""
    farm = Farm(build_dir, agents, slots, log_level="debug")
    try:
        one = farm.pipeline("one", 1)
        walls = []
        for _ in range(runs):
            start = time.time()
            out = farm.run("submit", one, "--watch")
            walls.append((submitted_text_id(out), start, time.time()))
        jobs = {job_id: farm.job(job_id) for job_id, _, _ in walls}
        load = loadavg()
        farm.stop_processes()  # their logs are whole now
        task_points, job_points = {}, {}
        for name in os.listdir(farm.dir):
            if not name.endswith(".log"):
                continue
            with open(os.path.join(farm.dir, name)) as f:
                for line in f:
                    m = TASK_POINT.search(line) or SPAWNED.search(line)
                    if m:
                        what = m.group(2) if m.re is TASK_POINT else "spawned"
                        task_points.setdefault(m.group(1), {})[what] = int(m.group(m.re.groups))
                    m = JOB_POINT.search(line)
                    if m:
                        job_points.setdefault(m.group(1), {})[m.group(2)] = int(m.group(3))
    finally:
        farm.stop()
    gaps = {s[0]: [] for s in STEPS}
    for job_id, start, end in walls:
        job = jobs[job_id]
        task = job["tasks"][0]
        p = dict(task_points.get(task["id"], {}))
        p.update(job_points.get(job_id, {}))
        p["cli start"] = int(start * 1e6)
        p["cli exit"] = int(end * 1e6)
        p["created"] = int(job["createdUs"])
        for name, a, z in STEPS:
            if a in p and z in p:
                gaps[name].append((p[z] - p[a]) / 1000)
    return gaps, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--slots", type=int, default=64)
    args = ap.parse_args()
    gaps, load = trace(args.build_dir, args.runs, args.agents, args.slots)
    print(f"submit --watch of one `true` task, {args.runs} runs on {args.agents} x {args.slots} "
          f"slots, load {load:.2f}; ms per run")
    for name, v in gaps.items():
        if v:
            print(f"  {name:48s} p50 {statistics.median(v):7.2f}  mean {statistics.mean(v):7.2f}  "
                  f"max {max(v):7.2f}  (n={len(v)})")


if __name__ == "__main__":
    main()
