"""Log figures of issue 19: tasks printing as fast as they can (bench/log_writer) with a
`musafarm submit --watch --logs` client attached, as a user follows a build.

- stored throughput: log bytes / (task started -> task succeeded), by the coordinator's clock. A
  task succeeds only once every byte of its log is stored (the coordinator refuses the result
  until then) and the log file is fsync'd, so this is bytes made durable per second.
- line delay: log_writer stamps the first line of each 64 KiB write with CLOCK_MONOTONIC; this
  process reads the watcher's stdout through a pipe and takes, for each stamped line, the time it
  arrived minus the stamp. Same machine, same clock.
- every line reached the watcher: the writer's lines counted on the watcher's side.

One task of `log_mib` MiB, then `log_tasks` tasks of `log_tasks_mib` MiB each at once (two
agents). Each job starts with a gate stage (sleep 0.5 s) during which `musafarm watch ID --logs`
attaches, so no delay is the catch-up of a late watcher.
"""
import os
import re
import statistics
import subprocess
import threading
import time

from farm import Farm, percentile, submitted_id

FULL = dict(log_mib=500, log_tasks=4, log_tasks_mib=128)
SMOKE = dict(log_mib=8, log_tasks=2, log_tasks_mib=2)

LINE = 128  # bench/log_writer.cc's line length
STAMP = re.compile(rb"MFTS(\d{19})\|")


class WatcherReader:
    """Reads a watcher's stdout to the end on a thread: counts the writer's lines and takes each
    stamped line's delay.

    It shares the machine with what it measures, so while the watch runs it looks at each byte
    once: one regex scan per read for the stamps (a stamp cut by a read's end is found in the
    seam, the last bytes before it and the first after). The lines are counted once the watcher
    has exited (join): each writer line holds one '|', after its stamp field; the CLI's own
    lines, task changes and the result table, hold none."""

    SEAM = 24  # len("MFTS") + 19 digits + "|"

    def __init__(self, stream):
        self.stream = stream
        self.lines = 0
        self.bytes = 0
        self.chunks = []
        self.delays_ms = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _stamps(self, data, now):
        for m in STAMP.finditer(data):
            self.delays_ms.append((now - int(m.group(1))) / 1e6)

    def _read(self):
        edge = b""  # the previous read's last SEAM - 1 bytes
        fd = self.stream.fileno()
        while True:
            chunk = os.read(fd, 1 << 20)
            now = time.monotonic_ns()
            if not chunk:
                break
            self.bytes += len(chunk)
            self.chunks.append(chunk)
            self._stamps(chunk, now)
            if edge:
                seam = edge + chunk[:self.SEAM - 1]
                for m in STAMP.finditer(seam):
                    if m.start() < len(edge) < m.end():  # cut by the read's end
                        self.delays_ms.append((now - int(m.group(1))) / 1e6)
            edge = chunk[-(self.SEAM - 1):]

    def join(self):
        self.thread.join()
        self.lines = sum(c.count(b"|") for c in self.chunks)
        self.chunks = []


def run_watched(farm, path):
    """Submits `path` and attaches `musafarm watch ID --logs` (during the gate stage); returns
    (job, reader) once the watcher has seen the job end."""
    job_id = submitted_id(farm.run("submit", path, "-o", "json"))
    proc = subprocess.Popen([farm.cli, "--insecure", "watch", job_id, "--logs"], env=farm.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = WatcherReader(proc.stdout)
    err = proc.stderr.read()
    rc = proc.wait()
    reader.join()
    if rc != 0:
        raise RuntimeError(f"watch --logs exited {rc}: {err.decode(errors='replace')[-500:]}")
    return farm.job(job_id), reader


def pipeline(farm, name, writer, mib, tasks):
    text = f"name: {name}\n"
    if tasks > 1:
        text += "matrix:\n  n: [" + ", ".join(str(i) for i in range(tasks)) + "]\n"
    text += ("stages:\n"
             "  - name: gate\n"
             '    exec: ["sleep", "0.5"]\n'
             "  - name: write\n"
             "    needs: [gate]\n"
             f'    exec: ["{writer}", "{mib}"]\n')
    return farm.pipeline_file(name, text)


def take(fig, args, cfg):
    writer = os.path.abspath(os.path.join(args.build_dir, "bench", "log_writer"))
    farm = Farm(args.build_dir, 2, 4, args.coordinator_arg)
    try:
        for name, mib, tasks in (("one task", cfg["log_mib"], 1),
                                 (f"{cfg['log_tasks']} tasks at once", cfg["log_tasks_mib"],
                                  cfg["log_tasks"])):
            job, reader = run_watched(farm, pipeline(farm, f"log{tasks}", writer, mib, tasks))
            writes = [t for t in job["tasks"] if t["id"].rsplit("/", 1)[-1] == "write"]
            stored = sum(int(t.get("logSize", 0)) for t in writes)
            expect_lines = tasks * (mib * (1 << 20) // LINE)
            if stored != expect_lines * LINE:
                raise RuntimeError(f"log {name}: {stored} bytes stored, {expect_lines * LINE} written")
            secs = (max(int(t["endedUs"]) for t in writes) -
                    min(int(t["startedUs"]) for t in writes)) / 1e6
            what = f"{tasks} x {mib} MiB" if tasks > 1 else f"{mib} MiB"
            rate = stored / secs / 1e6
            fig.add(f"log stored with a watcher attached, {name} ({what})", rate, "MB/s",
                    ">= 200 MB/s", rate >= 200,
                    note=f"{reader.lines} of {expect_lines} lines reached the watcher")
            if reader.lines != expect_lines:
                raise RuntimeError(f"log {name}: the watcher got {reader.lines} of {expect_lines} lines")
            p99 = percentile(reader.delays_ms, 99)
            fig.add(f"log line delay to the watcher p50, {name}", statistics.median(reader.delays_ms),
                    "ms")
            fig.add(f"log line delay to the watcher p99, {name} ({len(reader.delays_ms)} lines)", p99,
                    "ms", "< 100 ms", p99 < 100)
    finally:
        farm.stop()
