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
import fcntl
import os
import statistics
import subprocess
import threading
import time

from farm import Farm, percentile, submitted_id

FULL = dict(log_mib=500, log_tasks=4, log_tasks_mib=128)
SMOKE = dict(log_mib=8, log_tasks=2, log_tasks_mib=2)

LINE = 128  # bench/log_writer.cc's line length


class WatcherReader:
    """Reads a watcher's stdout to the end on a thread: counts the writer's lines and takes each
    stamped line's delay.

    It shares the machine with what it measures, so it does as little as it can per byte: a
    1 MiB pipe (one wake-up per watch message instead of one per 64 KiB), reads into one reused
    buffer (no fresh pages to fault in per read, nothing kept), and byte searches that run at
    memchr speed: the stamps are found through their one capital letter (a regex over every byte
    cost ~4 ms per MiB under load, as much CPU as the CLI itself), and the lines are counted by
    their '|' (each writer line holds one, after its stamp field; the CLI's own lines, task
    changes and the result table, hold none). A stamp cut by a read's end is found with the next
    read, in the seam: the last bytes before it and the first after."""

    SEAM = 24  # len("MFTS") + 19 digits + "|"
    F_SETPIPE_SZ = 1031

    def __init__(self, stream):
        self.stream = stream
        self.lines = 0
        self.bytes = 0
        self.delays_ms = []
        try:
            fcntl.fcntl(stream.fileno(), self.F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass  # a smaller pipe only costs more wake-ups
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _stamps(self, data, size, now, start, end):
        """Every stamp that starts in data[start:end] and is whole in data[:size]."""
        i = data.find(b"M", start, end)
        while i >= 0:
            stop = i + self.SEAM
            if stop <= size and data[i:i + 4] == b"MFTS" and data[stop - 1] == 0x7C:
                digits = bytes(data[i + 4:stop - 1])
                if digits.isdigit():
                    self.delays_ms.append((now - int(digits)) / 1e6)
            i = data.find(b"M", i + 1, end)

    def _read(self):
        buf = bytearray(1 << 20)
        edge = b""  # the previous read's last SEAM - 1 bytes: too few to hold a whole stamp
        fd = self.stream.fileno()
        while True:
            n = os.readv(fd, [buf])
            now = time.monotonic_ns()
            if n == 0:
                break
            self.bytes += n
            self.lines += buf.count(b"|", 0, n)
            if edge:
                seam = edge + bytes(buf[:min(n, self.SEAM - 1)])
                self._stamps(seam, len(seam), now, 0, len(edge))
            self._stamps(buf, n, now, 0, n)
            edge = (edge + bytes(buf[:n]))[-(self.SEAM - 1):] if n < self.SEAM else \
                bytes(buf[n - (self.SEAM - 1):n])

    def join(self):
        self.thread.join()


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
