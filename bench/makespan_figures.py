"""Makespan figure of issue 19: the fixture's shape (pipelines/torch_musa-exec.yaml: per Python
base -> dev -> test for the dev variant, release -> test for the release variant) with exec
stages that sleep known times, on `makespan_agents` agents of `makespan_slots` slots, from
the job's creation to its end by the coordinator's clock, against the lower bound
max(critical path, total work / slots).

The slots (2 x 4 = 8) exceed the widest the DAG gets (6 tasks ready at once), so the bound is
the critical path and a farm that cost nothing would meet it exactly: what is over it is the
farm's own overhead along the path (submission, each dependency's end -> the next stage's
start, the last result's commit). With fewer slots than that the bound is not reachable by any
schedule of this DAG, and the figure would measure list scheduling instead of the farm.
"""
from farm import Farm, job_seconds

FULL = dict(makespan_agents=2, makespan_slots=4, makespan_scale=1.0)
SMOKE = dict(makespan_agents=2, makespan_slots=4, makespan_scale=0.1)

PYTHONS = ("3.8", "3.9", "3.10")
# Stage durations in seconds at scale 1, and what each needs.
STAGES = {"base": (1.0, None), "dev": (2.0, "base"), "release": (1.5, None), "test": (1.0, None)}


def pipeline_text(scale):
    d = {name: f"{secs * scale:g}" for name, (secs, _) in STAGES.items()}
    return f"""name: makespan
matrix:
  variant: [dev, release]
  python: [{", ".join(f'"{p}"' for p in PYTHONS)}]
stages:
  - name: base
    when: {{variant: dev}}
    exec: ["sleep", "{d['base']}"]
  - name: dev
    when: {{variant: dev}}
    needs: [base]
    exec: ["sleep", "{d['dev']}"]
  - name: release
    when: {{variant: release}}
    exec: ["sleep", "{d['release']}"]
  - name: test
    needs: ["${{variant}}"]
    exec: ["sleep", "{d['test']}"]
"""


def lower_bound(scale, slots):
    """max(critical path, total work / slots), in seconds."""
    dev = STAGES["base"][0] + STAGES["dev"][0] + STAGES["test"][0]
    release = STAGES["release"][0] + STAGES["test"][0]
    work = len(PYTHONS) * (dev + release)
    return max(dev, release) * scale, work * scale / slots


def take(fig, args, cfg):
    agents, slots, scale = cfg["makespan_agents"], cfg["makespan_slots"], cfg["makespan_scale"]
    farm = Farm(args.build_dir, agents, slots, args.coordinator_arg)
    try:
        job = farm.submit_and_wait(farm.pipeline_file("makespan", pipeline_text(scale)))
    finally:
        farm.stop()
    path, per_slot = lower_bound(scale, agents * slots)
    bound = max(path, per_slot)
    secs = job_seconds(job)
    where = f"{len(job['tasks'])} tasks on {agents}x{slots} slots"
    fig.add(f"makespan of the fixture-shaped matrix, {where}", secs, "s",
            note=f"critical path {path:.2f} s, work / slots {per_slot:.2f} s")
    fig.add(f"makespan / lower bound max(critical path, work / slots), {where}", secs / bound, "x",
            "<= 1.05x", secs / bound <= 1.05)
