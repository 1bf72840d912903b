#!/usr/bin/env python3
"""The performance figures of issue 19, through the real binaries, with their targets.

Run by bench/run.sh (which builds first). Writes bench/results/latest.json (or --out) and
prints one table: figure, value, target, met / not met, and the load average when it was
taken. Peers (the plain spawn loop, Slurm) run in the same run, one after the other, never
at once, so the ratios compare like with like. A figure that cannot be taken says
"not measured" and why; none is ever made up.

  python3 bench/run.py --build-dir DIR [--smoke] [--out FILE] [--no-slurm]
                       [--only dispatch,slurm,logs,scale,makespan]

The figures of each group: farm_figures and slurm_figures below; log_figures.py (log
throughput and line delay with a watcher), scale_figures.py (10,000 simulated agents),
makespan_figures.py (the fixture-shaped matrix against its lower bound). farm.py holds
what they share.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
import slurm  # noqa: E402
from farm import Farm, Figures, ended, percentile, submitted_text_id  # noqa: E402
import log_figures  # noqa: E402
import latency_trace  # noqa: E402
import watch_trace  # noqa: E402
import makespan_figures  # noqa: E402
import scale_figures  # noqa: E402


def spawn_loop(args, n, par):
    """The machine's limit for no-op tasks: N x /bin/true with PAR in flight, in tasks/s."""
    out = subprocess.run([os.path.join(args.build_dir, "bench", "spawn_loop"), str(n), str(par)],
                         capture_output=True, text=True, check=True)
    done, secs = out.stdout.split()
    return int(done) / float(secs)


def farm_figures(fig, args, cfg):
    farm = Farm(args.build_dir, cfg["agents"], cfg["slots"], args.coordinator_arg)
    try:
        par = cfg["agents"] * cfg["slots"]
        # Dispatch: one job of N no-op cells (the coordinator's own timestamps), paired with
        # the machine's limit at the same parallelism (the plain spawn loop) right after it,
        # in several rounds. Either rate alone moves by half between runs on this 2-core
        # machine (what else runs, ext4's inode allocation); a ratio taken within a round
        # sees the same conditions on both sides, and the median of the rounds' ratios is
        # the figure.
        # The job is followed as from a CI log: `submit --watch`, one text line per task
        # change. (With `-o json` the CLI prints each change as the whole task, spec and
        # all: 0.6-0.7 ms of CPU per task on a 2-core machine, as much as the coordinator.)
        rates, loops, ratios = [], [], []
        for _ in range(cfg["rounds"]):
            out = farm.run("submit", farm.pipeline("batch", cfg["batch"]), "--watch", check=False)
            job = farm.job(submitted_text_id(out))
            secs = (int(job["endedUs"]) - int(job["createdUs"])) / 1e6
            if job["state"] != "JOB_STATE_SUCCEEDED":
                raise RuntimeError(f"batch job ended {job['state']}")
            rates.append(cfg["batch"] / secs)
            loops.append(spawn_loop(args, cfg["batch"], par))
            ratios.append(rates[-1] / loops[-1])
        rounds = f"median of {cfg['rounds']} rounds"
        fig.add(f"dispatch: one job of {cfg['batch']} no-op tasks, {cfg['agents']}x{cfg['slots']} slots"
                f" ({rounds})", statistics.median(rates), "tasks/s",
                note="rounds: " + ", ".join(f"{r:.0f}" for r in rates))
        loop = statistics.median(loops)
        fig.add(f"plain spawn loop: {cfg['batch']} x /bin/true, {par} in flight, each right after a "
                f"dispatch round ({rounds})", loop, "tasks/s",
                note="rounds: " + ", ".join(f"{r:.0f}" for r in loops))
        ratio = statistics.median(ratios)
        fig.add(f"dispatch / spawn loop ({rounds}' ratios)", ratio, "x", ">= 0.5x", ratio >= 0.5,
                note="rounds: " + ", ".join(f"{r:.2f}" for r in ratios))
        fig.add(f"assignment burst lower bound: {cfg['chain']} tests at the spawn loop's rate",
                cfg["chain"] / loop * 1000, "ms")

        # The burst (information, no target): 100 builds end together, so each agent gets
        # about half the tests in one turn and starts them one after another; the figure is
        # that queue, bounded below by N tasks at the spawn loop's rate (added below). From a
        # task's dependency ending (its result, as recorded) to the task started (the agent
        # spawned it and said so).
        out = farm.run("submit", farm.pipeline("chain", cfg["chain"], chained=True), "--watch",
                       check=False)
        tasks = farm.job(submitted_text_id(out))["tasks"]
        ends = {t["id"]: int(t["endedUs"]) for t in tasks}
        gaps = [(int(t["startedUs"]) - ends[t["spec"]["needs"][0]]) / 1000 for t in tasks
                if t["spec"].get("needs")]
        where = f"{cfg['chain']} x (build -> test), {cfg['agents']}x{cfg['slots']} slots"
        fig.add(f"assignment burst (information): dependency end -> started p50, {where}",
                statistics.median(gaps), "ms")
        fig.add(f"assignment burst (information): dependency end -> started p99, {where}",
                percentile(gaps, 99), "ms")

        # Separate submits, one CLI process each, then all done. In text, as a user types it
        # and as sbatch answers ("Submitted batch job N"): `-o json` costs the CLI about 1 ms
        # more per submit (its printer builds the descriptors of what it prints).
        one = farm.pipeline("one", 1)
        t0 = time.time()
        ids = [submitted_text_id(farm.run("submit", one)) for _ in range(cfg["separate"])]
        last = None
        deadline = time.monotonic() + 300
        while True:
            jobs = [farm.job(i) for i in ids] if last is None else last
            pending = [j for j in jobs if not ended(j)]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("separate submits did not end")
            time.sleep(0.1)
            last = [farm.job(j["id"]) if not ended(j) else j for j in jobs]
        end = max(int(j["endedUs"]) for j in jobs) / 1e6
        fig.add(f"separate submits: {cfg['separate']} one-task jobs, first submit to all done",
                cfg["separate"] / (end - t0), "tasks/s")

        # Submit and wait, one task, sequential, as the user sees it.
        lat = []
        for _ in range(cfg["latency"]):
            t = time.monotonic()
            farm.run("submit", one, "--watch")
            lat.append((time.monotonic() - t) * 1000)
        fig.add(f"submit --watch of one task, p50 of {cfg['latency']}", statistics.median(lat), "ms")
        fig.add(f"submit --watch of one task, p99 of {cfg['latency']}", percentile(lat, 99), "ms")

        # CLI start-up: CPU of whole processes (user + sys, from wait4).
        for what, argv in (("--version", ["--version"]), ("jobs", ["--insecure", "jobs"])):
            cpu = []
            for _ in range(cfg["startup"]):
                p = subprocess.Popen([farm.cli, *argv], env=farm.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                if p.returncode != 0:
                    raise RuntimeError(f"musafarm {what}: exit {p.returncode}")
                cpu.append((ru.ru_utime + ru.ru_stime) * 1000)
            v = statistics.median(cpu)
            fig.add(f"CLI start-up CPU: musafarm {what} (median of {cfg['startup']})", v, "ms CPU",
                    "< 5 ms CPU", v < 5)
    finally:
        farm.stop()


    # Assignment latency, what the target names: one task ready at a time (a line of stages,
    # each needing the one before), from the end of the commit that made it ready to the
    # agent's spawn of its process, on the debug points both binaries log (latency_trace.py).
    for slots in cfg["line_slots"]:
        where = f"a line of {cfg['line']} stages, {cfg['agents']}x{slots} slots"
        job, steps, _ = latency_trace.trace(args.build_dir, cfg["agents"], slots, "line",
                                            cfg["line"], args.coordinator_arg)
        v = steps[latency_trace.READY_TO_SPAWN]
        if job["state"] != "JOB_STATE_SUCCEEDED" or len(v) < cfg["line"] - 1:
            fig.missing(f"assignment latency (ready commit -> spawned) p50, {where}",
                        f"job {job['state']}, {len(v)} of {cfg['line'] - 1} tasks traced", "< 1 ms")
            continue
        p50 = statistics.median(v)
        fig.add(f"assignment latency (ready commit -> spawned) p50, {where}", p50, "ms", "< 1 ms",
                p50 < 1)
        fig.add(f"assignment latency (ready commit -> spawned) p99, {where}", percentile(v, 99),
                "ms")

    # submit --watch split (information): the farm's share, from the Submit on the coordinator's
    # loop to the job's end committed and handed to its watcher, on the debug points
    # (watch_trace.py); the rest of the figure above is the CLI's.
    gaps, _ = watch_trace.trace(args.build_dir, cfg["watch_split"], cfg["agents"], cfg["slots"])
    v = gaps[watch_trace.FARM_SHARE]
    if v:
        fig.add(f"submit --watch of one task, the farm's share (Submit on the coordinator -> job end "
                f"published), p50 of {len(v)}", statistics.median(v), "ms",
                note=", ".join(f"{name} {statistics.median(x):.2f}" for name, x in gaps.items()
                               if x and name != watch_trace.FARM_SHARE))


def slurm_figures(fig, args, cfg):
    names = ("Slurm sbatch (separate)", "Slurm job array", "Slurm srun true p50")
    targets = {"separate": ">= 3x", "array": ">= 10x", "srun": "<= 0.2x"}
    why = "--no-slurm" if args.no_slurm else slurm.unavailable()
    if why:
        for n in names:
            fig.missing(n, why)
        for k, t in targets.items():
            fig.missing(f"ratio musafarm / Slurm: {k}", why, t)
        return
    peer = slurm.Slurm()
    try:
        peer.start()
        t0 = time.monotonic()
        for _ in range(cfg["separate"]):
            peer.sbatch("--wrap=true")
        sep = cfg["separate"] / (peer.wait_completed(cfg["separate"], 300) - t0)
        fig.add(f"Slurm sbatch: {cfg['separate']} separate jobs, first submit to all done", sep, "tasks/s")
        t0 = time.monotonic()
        peer.sbatch(f"--array=1-{cfg['batch']}", "--wrap=true")
        arr = cfg["batch"] / (peer.wait_completed(cfg["separate"] + cfg["batch"], 300) - t0)
        fig.add(f"Slurm job array of {cfg['batch']}", arr, "tasks/s")
        lat = []
        for _ in range(cfg["srun"]):
            t = time.monotonic()
            peer.srun_true()
            lat.append((time.monotonic() - t) * 1000)
        srun = statistics.median(lat)
        fig.add(f"Slurm srun true, p50 of {cfg['srun']}", srun, "ms")
    except Exception as e:  # noqa: BLE001 - the peer's failure is a figure's "why"
        for k, t in targets.items():
            fig.missing(f"ratio musafarm / Slurm: {k}", f"Slurm peer failed: {e}"[:300], t)
        return
    finally:
        peer.stop()
    ms = fig.get(next((r["figure"] for r in fig.rows if r["figure"].startswith("separate")), ""))
    mb = fig.get(next((r["figure"] for r in fig.rows if r["figure"].startswith("dispatch")), ""))
    ml = fig.get(next((r["figure"] for r in fig.rows if r["figure"].startswith("submit --watch")
                       and "p50" in r["figure"]), ""))
    for key, mine, theirs, target, ok in (
            ("separate", ms, sep, ">= 3x", lambda r: r >= 3),
            ("array", mb, arr, ">= 10x", lambda r: r >= 10),
            ("srun", ml, srun, "<= 0.2x", lambda r: r <= 0.2)):
        name = f"ratio musafarm / Slurm: {key}"
        if mine is None:
            fig.missing(name, "the musafarm figure is missing", target)
        else:
            fig.add(name, mine / theirs, "x", target, ok(mine / theirs))


# Groups of figures, in the order they run (--only picks some). Slurm's ratios need dispatch's.
GROUPS = ("dispatch", "slurm", "logs", "scale", "makespan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny counts: proves it runs (CI)")
    ap.add_argument("--no-slurm", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--coordinator-arg", action="append", default=[],
                    help="one more argument for the coordinator (e.g. --no-group-commit)")
    ap.add_argument("--only", default=",".join(GROUPS),
                    help=f"comma-separated groups of figures to take, of {','.join(GROUPS)}")
    args = ap.parse_args()
    only = args.only.split(",")
    for group in only:
        if group not in GROUPS:
            ap.error(f"--only: unknown group {group!r} (known: {', '.join(GROUPS)})")
    cfg = (dict(agents=2, slots=4, batch=20, rounds=2, chain=5, line=5, line_slots=(4, 64), separate=5, latency=5, watch_split=3,
                startup=3, srun=3,
                **log_figures.SMOKE, **scale_figures.SMOKE, **makespan_figures.SMOKE)
           if args.smoke else
           dict(agents=2, slots=64, batch=500, rounds=5, chain=100, line=60, line_slots=(4, 64), separate=200,
                latency=200, watch_split=50, startup=20,
                srun=50, **log_figures.FULL, **scale_figures.FULL, **makespan_figures.FULL))
    fig = Figures()
    with open("/proc/loadavg") as f:
        loadavg_all = f.read().split()[:3]
    started = time.time()
    if "dispatch" in only:
        farm_figures(fig, args, cfg)
    if "slurm" in only:
        slurm_figures(fig, args, cfg)
    if "logs" in only:
        log_figures.take(fig, args, cfg)
    if "scale" in only:
        scale_figures.take(fig, args, cfg)
    if "makespan" in only:
        makespan_figures.take(fig, args, cfg)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "mode": "smoke" if args.smoke else "full",
        "build_dir": args.build_dir,
        "revision": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                   text=True).stdout.strip(),
        "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                    "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "config": cfg,
        "coordinator_args": args.coordinator_arg,
        "groups": only,
        "load_before": loadavg_all,
        "seconds": round(time.time() - started, 1),
        "figures": fig.rows,
    }
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(fig.table())
    print(f"({result['mode']}, {result['seconds']} s, {os.cpu_count()} cores, load before "
          f"{' '.join(loadavg_all)}, coordinator args {args.coordinator_arg or 'none'}; written to {out})")


if __name__ == "__main__":
    main()
