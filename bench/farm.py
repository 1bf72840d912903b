"""What every figure of bench/run.py shares: the table of figures, a farm of real binaries on
loopback (a coordinator and K agents, driven by the real CLI), and small measuring helpers."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from processes import stop_all  # noqa: E402


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


class Figures:
    def __init__(self):
        self.rows = []

    def add(self, name, value, unit, target=None, met=None, note=""):
        self.rows.append({"figure": name, "value": value, "unit": unit, "target": target,
                          "met": met, "load": loadavg(), "note": note})

    def missing(self, name, why, target=None):
        self.rows.append({"figure": name, "value": None, "unit": "", "target": target,
                          "met": None, "load": loadavg(), "note": f"not measured: {why}"})

    def get(self, name):
        for r in self.rows:
            if r["figure"] == name and r["value"] is not None:
                return r["value"]
        return None

    def starting(self, prefix, contains=""):
        """The value of the first figure whose name starts with `prefix` (and contains `contains`)."""
        for r in self.rows:
            if r["figure"].startswith(prefix) and contains in r["figure"] and r["value"] is not None:
                return r["value"]
        return None

    def table(self):
        def fmt(r):
            if r["value"] is None:
                return r["note"]
            v = r["value"]
            text = f"{v:,.1f}" if isinstance(v, float) and v >= 10 else (
                f"{v:.3g}" if isinstance(v, float) else str(v))
            return f"{text} {r['unit']}".strip()
        lines = [("figure", "value", "target", "met", "load")]
        for r in self.rows:
            met = "" if r["met"] is None else ("met" if r["met"] else "NOT met")
            lines.append((r["figure"], fmt(r), r["target"] or "", met, f"{r['load']:.2f}"))
        widths = [max(len(line[i]) for line in lines) for i in range(4)]
        out = []
        for line in lines:
            out.append("  ".join(line[i].ljust(widths[i]) for i in range(4)) + "  " + line[4])
        out += [f"  {r['figure']}: {r['note']}" for r in self.rows if r["note"]]
        return "\n".join(out)


class Farm:
    """A coordinator (SQLite, --insecure on loopback) and `agents` agents of `slots` slots, each
    with `labels`, logging at `log_level` (bench/latency_trace.py reads the debug points)."""

    def __init__(self, build, agents, slots, coordinator_args=(), labels=(), log_level="warn"):
        self.build = build
        self.dir = tempfile.mkdtemp(prefix="musafarm-bench.")
        self.procs = []
        self.cli = os.path.join(build, "cli", "musafarm")
        port_file = os.path.join(self.dir, "port")
        self.coordinator = subprocess.Popen(
            [os.path.join(build, "coordinator", "musafarm-coordinator"), "--insecure",
             "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--data-dir", os.path.join(self.dir, "data"), "--log-level", log_level,
             *coordinator_args],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "coordinator.log"), "w"))
        self.procs.append(self.coordinator)
        self._wait(lambda: os.path.exists(port_file) and os.path.getsize(port_file) > 0, "port file")
        with open(port_file) as f:
            self.address = f"127.0.0.1:{f.read().strip()}"
        self.env = dict(os.environ, MUSAFARM_COORDINATOR=self.address, NO_COLOR="1")
        label_args = [a for label in labels for a in ("--label", label)]
        for n in range(agents):
            self.procs.append(subprocess.Popen(
                [os.path.join(build, "agent", "musafarm-agent"), "--insecure", "--name", f"bench-{n}",
                 "--slots", str(slots), "--work-dir", os.path.join(self.dir, f"agent-{n}"),
                 "--log-level", log_level, *label_args], env=self.env,
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, f"agent-{n}.log"), "w")))
        self._wait(lambda: self.run("agents").count("connected") >= agents, "agents connected")

    def _wait(self, cond, what, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while not cond():
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited {p.returncode} waiting for {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def run(self, *args, check=True):
        out = subprocess.run([self.cli, "--insecure", *args], env=self.env, capture_output=True,
                             text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"musafarm {' '.join(args)}: exit {out.returncode}: {out.stderr}")
        return out.stdout

    def pipeline(self, name, cells, chained=False, labels=()):
        """cells no-op tasks; chained: cells x (build -> test); labels: the agent labels each
        stage needs."""
        need = "    labels: [" + ", ".join(json.dumps(label) for label in labels) + "]\n" if labels else ""
        text = f"name: {name}\n"
        if cells > 1:
            text += "matrix:\n  n: [" + ", ".join(str(i) for i in range(cells)) + "]\n"
        text += 'stages:\n  - name: build\n    exec: ["true"]\n' + need
        if chained:
            text += '  - name: test\n    needs: [build]\n    exec: ["true"]\n' + need
        return self.pipeline_file(name, text)

    def pipeline_file(self, name, text):
        path = os.path.join(self.dir, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def job(self, job_id):
        return json.loads(self.run("status", job_id, "-o", "json"))

    def submit_and_wait(self, path):
        """Submits and watches to the end (text, as from a CI log: run.py says why); returns
        the job as `status -o json` has it."""
        job = self.job(submitted_text_id(self.run("submit", path, "--watch", check=False)))
        if job["state"] != "JOB_STATE_SUCCEEDED":
            raise RuntimeError(f"job {job['id']} ({os.path.basename(path)}) ended {job['state']}")
        return job

    def stop_processes(self):
        """Stops the binaries; their logs stay in self.dir until stop()."""
        stop_all(self.procs)

    def stop(self):
        stop_all(self.procs)
        shutil.rmtree(self.dir, ignore_errors=True)


def submitted_id(stdout):
    for line in stdout.splitlines():
        try:
            return json.loads(line)["id"]
        except (ValueError, KeyError):
            continue
    raise RuntimeError(f"no job id in submit's output: {stdout!r}")


def submitted_text_id(stdout):
    """The job id in `submit`'s text output ("submitted job ID (N tasks)...")."""
    m = re.search(r"^submitted job (\S+) \(", stdout, re.M)
    if m is None:
        raise RuntimeError(f"no job id in submit's output: {stdout[:500]!r}")
    return m.group(1)


def ended(job):
    return job.get("state") not in (None, "JOB_STATE_RUNNING", "JOB_STATE_QUEUED")


def job_seconds(job):
    """Created -> ended, by the coordinator's clock."""
    return (int(job["endedUs"]) - int(job["createdUs"])) / 1e6


def process_cpu_seconds(pid):
    """user + system CPU of a process so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
