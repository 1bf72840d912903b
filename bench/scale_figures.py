"""Scale figures of issue 19: a coordinator with `sim_agents` simulated agents connected
(bench/agent_sim: each its own channel, TCP connection and Connect stream, registered with
slots, heartbeating at the interval the coordinator gives, answering every assignment at once),
from `sim_procs` processes.

- RSS of the coordinator with them connected, and its CPU at rest over `sim_idle_s` seconds
  (user + system, from /proc, as a share of one core);
- dispatch throughput of one job of `sim_batch` no-op tasks on the two real agents (label
  pool=real), without the simulated agents and then with them connected: placement looks at
  every agent, and every heartbeat takes the core's loop, so this is what they cost the work;
- dispatch over the simulated agents themselves (label pool=sim; they answer at once): the
  coordinator's own rate with the whole farm to choose from. Informational.

The coordinator raises its soft RLIMIT_NOFILE to the hard limit at start (one descriptor per
agent connection); each sim process does the same for its share.
"""
import json
import os
import select
import signal
import subprocess
import time

from farm import Farm, job_seconds, process_cpu_seconds, process_rss_bytes
from processes import stop_all

FULL = dict(sim_agents=10000, sim_procs=4, sim_slots=4, sim_idle_s=10, sim_batch=500,
            sim_settle_s=5)
SMOKE = dict(sim_agents=200, sim_procs=2, sim_slots=4, sim_idle_s=1, sim_batch=20,
             sim_settle_s=0.5)


def start_sims(farm, build, cfg, extra=()):
    """Starts the sim processes (`extra`: more agent_sim arguments); returns them once every
    agent is registered."""
    sim = os.path.join(build, "bench", "agent_sim")
    per = cfg["sim_agents"] // cfg["sim_procs"]
    procs = []
    for i in range(cfg["sim_procs"]):
        count = per if i < cfg["sim_procs"] - 1 else cfg["sim_agents"] - per * i
        procs.append(subprocess.Popen(
            [sim, "--coordinator", farm.address, "--agents", str(count), "--first", str(i * per),
             "--slots", str(cfg["sim_slots"]), "--label", "pool=sim", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(
                os.path.join(farm.dir, f"agent_sim-{i}.log"), "w"), text=True))
    deadline = time.monotonic() + 300
    for i, p in enumerate(procs):
        ready, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.monotonic()))
        line = p.stdout.readline() if ready else ""  # "registered N", or EOF if it failed
        if not line.startswith("registered"):
            stop_sims(procs)
            with open(os.path.join(farm.dir, f"agent_sim-{i}.log")) as f:
                raise RuntimeError(f"agent_sim {i} did not register its agents within 300 s: "
                                   f"{f.read()[-500:]}")
    return procs


def sim_heartbeats(procs):
    """Heartbeats the sims have sent so far (each prints its counters at SIGUSR1)."""
    total = 0
    for p in procs:
        p.send_signal(signal.SIGUSR1)
        total += json.loads(p.stdout.readline())["heartbeats"]
    return total


def stop_sims(procs):
    """Stops them; returns their counters (one JSON line each)."""
    stop_all(procs)
    out = []
    for p in procs:
        for line in p.stdout.read().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def dispatch(farm, cfg, name, pool):
    job = farm.submit_and_wait(farm.pipeline(name, cfg["sim_batch"], labels=[f"pool={pool}"]))
    return cfg["sim_batch"] / job_seconds(job)


def take(fig, args, cfg):
    farm = Farm(args.build_dir, 2, 64, args.coordinator_arg, labels=["pool=real"])
    sims = []
    try:
        pid = farm.coordinator.pid
        n = cfg["sim_agents"]
        rss_before = process_rss_bytes(pid)
        without = dispatch(farm, cfg, "real0", "real")
        fig.add(f"scale: dispatch of {cfg['sim_batch']} no-op tasks on 2x64 real slots, no simulated "
                "agents", without, "tasks/s")
        t0 = time.monotonic()
        sims = start_sims(farm, args.build_dir, cfg)
        connect_s = time.monotonic() - t0
        time.sleep(cfg["sim_settle_s"])  # registration's commits and first heartbeats pass
        beats0, cpu0, w0 = sim_heartbeats(sims), process_cpu_seconds(pid), time.monotonic()
        time.sleep(cfg["sim_idle_s"])
        cpu1, w1, beats1 = process_cpu_seconds(pid), time.monotonic(), sim_heartbeats(sims)
        rss = process_rss_bytes(pid)
        idle = (cpu1 - cpu0) / (w1 - w0) * 100
        beat_rate = (beats1 - beats0) / (w1 - w0)
        fig.add(f"scale: {n} simulated agents: coordinator RSS", rss / 2**20, "MiB", "< 1 GiB",
                rss < 2**30, note=f"{rss_before / 2**20:.0f} MiB before they connected; "
                f"all registered {connect_s:.1f} s after the first connected")
        fig.add(f"scale: {n} simulated agents: idle coordinator CPU over {cfg['sim_idle_s']} s",
                idle, "% of a core", "< 10% of a core", idle < 10,
                note=f"{beat_rate:.0f} heartbeats/s sent by the simulated agents meanwhile")
        with_sims = dispatch(farm, cfg, "real1", "real")
        fig.add(f"scale: dispatch of {cfg['sim_batch']} no-op tasks on 2x64 real slots, {n} simulated "
                "agents connected", with_sims, "tasks/s")
        fig.add(f"scale: dispatch with {n} agents connected / without", with_sims / without, "x",
                ">= 0.5x", with_sims / without >= 0.5)
        onto = dispatch(farm, cfg, "sim", "sim")
        fig.add(f"scale: dispatch of {cfg['sim_batch']} no-op tasks onto the {n} simulated agents",
                onto, "tasks/s")
        counters = stop_sims(sims)
        sims = []
        agents = sum(c["agents"] for c in counters)
        ended_early = [c for c in counters if c["registered"] != c["agents"]]
        if agents != n or ended_early:
            raise RuntimeError(f"agent_sim counters: {counters}")
    finally:
        if sims:
            stop_sims(sims)
        farm.stop()
