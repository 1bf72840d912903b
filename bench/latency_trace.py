#!/usr/bin/env python3
"""Where an assignment's time goes, task by task (issue 19): a farm of real binaries at debug
level, one pipeline, then each dependent task's wait split at the points the binaries log.

  python3 bench/latency_trace.py --build-dir build [--agents 2] [--slots 64]
                                 [--shape chain|line] [--tasks 100]

chain: TASKS x (build -> test), the shape of bench/run.py's assignment latency (a burst:
every build ends at about the same time). line: TASKS stages, each needing the one before,
so one task is ready at a time (the per-task cost with the farm not saturated).

The points, all on this host's clock: the dependency's end (its result applied by the
coordinator, the task's endedUs), `assignment sent` (its commit is on disk and the message
leaves the coordinator's loop), `assignment read` (the agent's gRPC thread has it), `on the
loop` (the agent's loop takes it), `spawn from` (StartExecution begins: the state
that lists it is written), `spawn to` (posix_spawn returned), `started on the loop`
(the coordinator applies Started: the task's startedUs, what bench/run.py measures).
Debug logging costs a little on every step; compare runs with each other, not with run.py.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from processes import stop_all  # noqa: E402

POINT = re.compile(r"task=(\S+) attempt=\d+ (assignment sent|assignment read|assignment on the loop|"
                   r"started on the loop|spawn from=\d+)[^=]*? (?:at|to)=(\d+)")
SPAWN = re.compile(r"task=(\S+) attempt=\d+ spawn from=(\d+)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--slots", type=int, default=64)
    ap.add_argument("--shape", choices=("chain", "line"), default="chain")
    ap.add_argument("--tasks", type=int, default=100)
    args = ap.parse_args()
    b = args.build_dir
    d = tempfile.mkdtemp(prefix="musafarm-lat.")
    env = dict(os.environ, NO_COLOR="1")
    port_file = os.path.join(d, "port")
    procs = [subprocess.Popen(
        [f"{b}/coordinator/musafarm-coordinator", "--insecure", "--listen", "127.0.0.1:0",
         "--port-file", port_file, "--data-dir", f"{d}/data", "--log-level", "debug"],
        stdout=subprocess.DEVNULL, stderr=open(f"{d}/coordinator.log", "w"))]
    try:
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and os.path.getsize(port_file)):
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("the coordinator did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            env["MUSAFARM_COORDINATOR"] = "127.0.0.1:" + f.read().strip()
        for i in range(args.agents):
            procs.append(subprocess.Popen(
                [f"{b}/agent/musafarm-agent", "--insecure", "--name", f"lat-{i}", "--slots",
                 str(args.slots), "--work-dir", f"{d}/agent-{i}", "--log-level", "debug"], env=env,
                stdout=subprocess.DEVNULL, stderr=open(f"{d}/agent-{i}.log", "w")))

        def cli(*a):
            return subprocess.run([f"{b}/cli/musafarm", "--insecure", *a], env=env,
                                  capture_output=True, text=True, check=True).stdout
        while cli("agents").count("connected") < args.agents:
            if time.monotonic() > deadline:
                raise RuntimeError("the agents did not connect")
            time.sleep(0.05)
        n = args.tasks
        if args.shape == "chain":
            text = ("name: chain\nmatrix:\n  n: [" + ", ".join(map(str, range(n))) + "]\nstages:\n"
                    '  - name: build\n    exec: ["true"]\n'
                    '  - name: test\n    needs: [build]\n    exec: ["true"]\n')
        else:
            text = "name: line\nstages:\n" + "".join(
                f"  - name: s{i}\n" + (f"    needs: [s{i - 1}]\n" if i else "") + '    exec: ["true"]\n'
                for i in range(n))
        with open(f"{d}/p.yaml", "w") as f:
            f.write(text)
        out = subprocess.run([f"{b}/cli/musafarm", "--insecure", "submit", f"{d}/p.yaml", "--watch",
                              "-o", "json"], env=env, capture_output=True, text=True).stdout
        job_id = next(json.loads(line)["id"] for line in out.splitlines()
                      if line.startswith("{") and '"id"' in line)
        job = json.loads(cli("status", job_id, "-o", "json"))
    finally:
        stop_all(procs)
    points = {}
    for name in os.listdir(d):
        if name.endswith(".log"):
            with open(os.path.join(d, name)) as f:
                for line in f:
                    m = POINT.search(line)
                    if m:
                        what = "spawned" if m.group(2).startswith("spawn") else m.group(2)
                        points.setdefault(m.group(1), {})[what] = int(m.group(3))
                    m = SPAWN.search(line)
                    if m:
                        points.setdefault(m.group(1), {})["spawning"] = int(m.group(2))
    tasks = {t["id"]: t for t in job["tasks"]}
    steps = [("dependency end -> assignment sent (commit)", "end", "assignment sent"),
             ("sent -> read by the agent's gRPC thread", "assignment sent", "assignment read"),
             ("read -> on the agent's loop", "assignment read", "assignment on the loop"),
             ("on the loop -> spawn begins (state written)", "assignment on the loop", "spawning"),
             ("spawn begins -> spawned", "spawning", "spawned"),
             ("assignment sent -> spawned", "assignment sent", "spawned"),
             ("dependency end -> spawned", "end", "spawned"),
             ("dependency end -> startedUs (bench/run.py)", "end", "started on the loop")]
    gaps = {s[0]: [] for s in steps}
    for t in job["tasks"]:
        needs = t["spec"].get("needs")
        if not needs:
            continue
        # A build without the debug points (an older one) still gives the last line.
        p = dict(points.get(t["id"], {}))
        p["end"] = int(tasks[needs[0]]["endedUs"])
        p["started on the loop"] = int(t["startedUs"])
        for name, a, z in steps:
            if a in p and z in p:
                gaps[name].append((p[z] - p[a]) / 1000)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{args.shape}: {n} tasks on {args.agents} x {args.slots} slots, job {job['state']}, "
          f"load {load}; ms per dependent task")
    for name, v in gaps.items():
        if v:
            print(f"  {name:44s} p50 {statistics.median(v):7.2f}  mean {statistics.mean(v):7.2f}  "
                  f"max {max(v):7.2f}  (n={len(v)})")


if __name__ == "__main__":
    main()
