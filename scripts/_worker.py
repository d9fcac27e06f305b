"""Run workflow jobs in a warm, forking worker so each job does not pay ~2-3 s of imports.

Every ``analyse_outcome`` / ``report`` job is a Snakemake ``script:`` whose only work is
:func:`submit`: it sends the job's inputs, outputs, params and log path to a worker process
over a Unix socket (Linux abstract namespace, no file).  The worker imports numpy, scipy,
pandas, matplotlib and metapool once, draws one throw-away figure to load the fonts, and then
``fork()``s one child per job: the child runs the job function from :mod:`_tasks` with stdout and
stderr sent to the job's log and exits with the job's status, which the worker passes back.
Jobs still run in parallel (one child per Snakemake job, up to ``--cores``) and Snakemake still
sees one job per outcome, with its inputs, outputs and log.

The first job starts the worker; it exits by itself after ``IDLE_SECONDS`` without jobs.  Its
name includes the working directory, the Python executable and the size and modification time
of every source file of ``metapool`` and ``scripts``, so edited code is never run by an old
worker.  If the worker cannot be used (not Linux, ``METAPOOL_WORKER=0``, any socket error), the
job runs in-process instead: the results are the same, only slower.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
IDLE_SECONDS = 10.0
CONNECT_TIMEOUT = 60.0


def _code_stamp() -> str:
    h = hashlib.sha1(f"{sys.executable}|{os.getcwd()}|{HERE}".encode())
    spec = importlib.util.find_spec("metapool")
    dirs = [HERE] + ([Path(p) for p in spec.submodule_search_locations] if spec else [])
    for d in dirs:
        for p in sorted(d.rglob("*.py")):
            st = p.stat()
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _address(stamp: str) -> str:
    return f"\0metapool-worker-{os.getuid()}-{stamp}"


def _plain(namedlist) -> dict:
    """Named entries of a Snakemake Namedlist as ``{name: str or [str]}``."""
    out = {}
    for name, value in namedlist.items():
        out[name] = [str(v) for v in value] if isinstance(value, list) else (
            str(value) if isinstance(value, (str, os.PathLike)) else value)
    return out


def _job(req: dict) -> SimpleNamespace:
    return SimpleNamespace(input=SimpleNamespace(**req["input"]), output=SimpleNamespace(**req["output"]),
                           params=SimpleNamespace(**req["params"]), log=req["log"])


def run_task(req: dict) -> int:
    """Run one job in this process; traceback to the job's log, one line to stderr on failure."""
    import _tasks

    try:
        getattr(_tasks, req["task"])(_job(req))
        return 0
    except Exception as exc:  # the job failed: full story in the log, the gist on stderr
        traceback.print_exc()
        sys.stderr.flush()
        os.write(req.get("stderr_fd", 2), f"metapool: {type(exc).__name__}: {exc} "
                                          f"(details: {req['log'][0]})\n".encode())
        return 1


def _run_with_log(req: dict) -> int:
    """In a forked child (or in-process fallback): send stdout/stderr to the log, run the task."""
    log = Path(req["log"][0])
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    saved = os.dup(2)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(fd, 1), os.dup2(fd, 2)
    os.close(fd)
    try:
        return run_task({**req, "stderr_fd": saved})
    finally:
        sys.stdout.flush(), sys.stderr.flush()


# ----------------------------------------------------------------------------- client
def _request(addr: str, req: dict) -> int | None:
    """Send ``req`` to the worker at ``addr``; the job's exit status, or None if unreachable."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    started = False
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(addr)
            break
        except (ConnectionRefusedError, FileNotFoundError):
            s.close()
            if not started:
                _start_worker(addr)
                started = True
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
    with s:
        s.sendall(json.dumps(req).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                return None
            reply += chunk
    return int(json.loads(reply)["code"])


def _start_worker(addr: str) -> None:
    log = Path(".snakemake", "log", "metapool-worker.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve", addr[1:]],
                         stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True,
                         cwd=os.getcwd())


def submit(task: str, snakemake) -> None:
    """Run ``task`` for this Snakemake job (warm worker if possible); exit with its status."""
    req = {"task": task, "cwd": os.getcwd(), "input": _plain(snakemake.input),
           "output": _plain(snakemake.output), "params": _plain(snakemake.params),
           "log": [str(x) for x in snakemake.log]}
    code = None
    if sys.platform.startswith("linux") and os.environ.get("METAPOOL_WORKER", "1") != "0":
        try:
            code = _request(_address(_code_stamp()), req)
        except OSError:
            code = None
    if code is None:
        sys.path.insert(0, str(HERE))
        code = _run_with_log(req)
    sys.exit(code)


# ----------------------------------------------------------------------------- worker
def serve(name: str) -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind("\0" + name)
    except OSError:          # another worker with this name is already serving
        return
    srv.listen(64)
    sys.path.insert(0, str(HERE))
    import _tasks

    t0 = time.monotonic()
    _tasks.preload()
    try:
        _tasks.warm_up()
    except Exception:        # warming up is an optimisation only
        traceback.print_exc()
    print(f"worker {os.getpid()} ready in {time.monotonic() - t0:.2f} s ({os.getcwd()})", flush=True)
    children: dict[int, tuple] = {}
    last = time.monotonic()
    while children or time.monotonic() - last < IDLE_SECONDS:
        ready, _, _ = select.select([srv] + [c[0] for c in children.values()], [], [], 0.02)
        for pid, (conn, *_rest) in list(children.items()):
            if conn in ready:      # the job's client went away (Snakemake stopped): stop the job
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        if srv in ready:
            conn, _ = srv.accept()
            req = b""
            while not req.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                req += chunk
            try:
                job = json.loads(req)
            except ValueError:
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:                               # child: run the job, never return
                srv.close(), conn.close()
                # a stopped job unwinds (temp-file cleanup runs) instead of dying mid-write
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
                code = 1
                try:
                    os.chdir(job["cwd"])
                    code = _run_with_log(job)
                finally:
                    os._exit(code)
            children[pid] = (conn, job["task"], job["log"][0], time.monotonic())
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn, task, log, t0 = children.pop(pid)
            print(f"  {task} -> {log}: status {os.waitstatus_to_exitcode(status)}, "
                  f"{time.monotonic() - t0:.2f} s", flush=True)
            try:
                conn.sendall(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            except OSError:
                pass
            conn.close()
            last = time.monotonic()
    srv.close()
    print(f"worker {os.getpid()} idle for {IDLE_SECONDS:.0f} s: exit", flush=True)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "serve":
    serve(sys.argv[2])
