"""Ends the daemons a benchmark started: SIGTERM in reverse start order, SIGKILL after 15 s."""
import subprocess


def stop_all(procs):
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
