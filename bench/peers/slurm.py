"""Debian's Slurm 22.05 on loopback, as a peer to measure musafarm against.

Its own munged, slurmctld and two slurmd (n1, n2) in a temp dir, on 127.0.0.1,
tuned as Slurm's high-throughput guide says (no scheduling delay, a deep
queue, 64 jobs per node by oversubscription, no accounting, no cgroups), so
the comparison does not flatter musafarm. Completion is read from the
jobcomp/filetxt file rather than by polling squeue. Needs slurm-wlm and munge
(scripts/install-deps.sh) and root (slurmd runs jobs as their user).
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from processes import stop_all


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable():
    """Why the peer cannot run here, or None."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch", "srun"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} not installed (scripts/install-deps.sh installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "slurmd needs root to run jobs"
    return None


class Slurm:
    NODES = ("n1", "n2")
    JOBS_PER_NODE = 64

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="musafarm-bench-slurm.")
        os.chmod(self.dir, 0o700)
        self.procs = []
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.jobcomp = os.path.join(self.dir, "jobcomp.txt")
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    def _sbin(self, tool):
        return shutil.which(tool) or f"/usr/sbin/{tool}"

    def start(self, timeout_s=30):
        d = self.dir
        key = os.path.join(d, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        sock = os.path.join(d, "munge.sock")
        self.procs.append(subprocess.Popen(
            [self._sbin("munged"), "-F", "--force", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log",
             f"--seed-file={d}/munged.seed", "--num-threads=4"],
            stdout=subprocess.DEVNULL, stderr=open(f"{d}/munged.err", "w")))
        ctld_port = _free_port()
        node_ports = {n: _free_port() for n in self.NODES}
        for sub in ("state",) + tuple(f"spool-{n}" for n in self.NODES):
            os.makedirs(os.path.join(d, sub))
        nodes = "\n".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={p} CPUs=1 State=UNKNOWN"
            for n, p in node_ports.items())
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=bench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool-%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd-%n.log
SlurmctldDebug=error
SlurmdDebug=error
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0,default_queue_depth=1000
SlurmdParameters=config_overrides
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=2
MaxJobCount=100000
MaxArraySize=100001
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
ReturnToService=2
MpiDefault=none
LaunchParameters=use_interactive_step
{nodes}
PartitionName=bench Nodes={",".join(self.NODES)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:{self.JOBS_PER_NODE}
""")
        self.procs.append(subprocess.Popen(
            [self._sbin("slurmctld"), "-D", "-i", "-f", self.conf],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(f"{d}/slurmctld.err", "w")))
        for n in self.NODES:
            self.procs.append(subprocess.Popen(
                [self._sbin("slurmd"), "-D", "-N", n, "-f", self.conf],
                env=self.env, stdout=subprocess.DEVNULL, stderr=open(f"{d}/slurmd-{n}.err", "w")))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T %D"], env=self.env,
                                 capture_output=True, text=True)
            idle = sum(int(line.split()[1]) for line in out.stdout.splitlines()
                       if line.split() and line.split()[0] in ("idle", "mixed"))
            if idle == len(self.NODES):
                return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"slurm daemon {p.args[0]} exited {p.returncode}: "
                                       + self._logs())
            time.sleep(0.1)
        raise RuntimeError("slurm nodes not idle within %ds: %s" % (timeout_s, self._logs()))

    def _logs(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith((".log", ".err")):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    tail = f.read()[-400:].strip()
                if tail:
                    out.append(f"[{name}] {tail}")
        return " ".join(out)

    def completed(self):
        """Jobs finished so far (lines in the jobcomp file)."""
        try:
            with open(self.jobcomp) as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def wait_completed(self, n, timeout_s):
        deadline = time.monotonic() + timeout_s
        while self.completed() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurm: {self.completed()} of {n} jobs done after {timeout_s}s")
            time.sleep(0.005)
        return time.monotonic()

    def sbatch(self, *args):
        subprocess.run(["sbatch", "-Q", "-o", "/dev/null", "-e", "/dev/null", *args],
                       env=self.env, check=True, stdout=subprocess.DEVNULL)

    def srun_true(self):
        subprocess.run(["srun", "-Q", "true"], env=self.env, check=True)

    def stop(self):
        stop_all(self.procs)
        # A job step's slurmstepd outlives a stopped slurmd (it waits for it
        # to come back): end the ones of this instance, known by its config.
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() != "slurmstepd":
                        continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if f"SLURM_CONF={self.conf}".encode() in env:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
