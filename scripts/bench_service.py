"""Load test of the backend service: concurrent clients submit small predict jobs at once.

Starts ``image-dynamics serve --model tiny`` on a free port (or uses ``--url``), runs ``--clients`` threads that
each submit ``--jobs`` jobs through the add-on's own HTTP client and wait for them, then re-submits the same jobs
(cache hits). Every job must either complete (a valid .npz) or be refused with 429 "busy"; anything else is
"lost" and makes the exit code 1. Prints latency percentiles (submit → result downloaded) and the server's
memory (resident set size, sampled every 50 ms).

    .venv/bin/python scripts/bench_service.py                 # 20 clients x 1 job, 2 steps, queue of 8
    .venv/bin/python scripts/bench_service.py --max-queue 32  # queue large enough for everyone
"""
from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from addon.core import protocol, spectral
from addon.core.client import BackendClient
from addon.core.protocol import BackendError


def start_server(cache_dir: str, max_queue: int, timeout: float = 180.0):
    cmd = [sys.executable, "-m", "backend.cli", "serve", "--port", "0", "--model", "tiny", "--device", "cpu",
           "--cache-dir", cache_dir, "--max-queue", str(max_queue)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode("utf-8", "replace")
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in iter(proc.stdout.readline, b"")], daemon=True).start()
            return proc, match.group(1)
    proc.kill()
    raise SystemExit("the backend did not start:\n" + "".join(lines))


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.interval, self.peak, self.samples = interval, 0, []
        self.stop_event = threading.Event()

    def rss(self) -> int:
        return self.process.memory_info().rss

    def run(self):
        import psutil

        while not self.stop_event.is_set():
            try:
                rss = self.rss()
            except psutil.Error:
                return
            self.samples.append(rss)
            self.peak = max(self.peak, rss)
            time.sleep(self.interval)


def photo_png(seed: int, width: int, height: int) -> bytes:
    from addon.core.png import encode_png

    rng = np.random.default_rng(seed)
    return encode_png(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def run_phase(url: str, clients: int, jobs: int, params: protocol.PredictParams, size, timeout: float) -> dict:
    outcomes = {"completed": [], "cached": [], "refused": [], "lost": []}
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client_thread(index: int):
        client = BackendClient(url, read_timeout=30.0)
        barrier.wait()  # everyone submits at the same moment
        for j in range(jobs):
            data = photo_png(1000 * index + j, *size)
            t0 = time.perf_counter()
            try:
                job = client.submit_predict(data, params)
                final = client.wait(job.id, poll_interval=0.25, timeout=timeout)  # as the add-on polls
                blob = client.result(final.id)
                with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                    spectral.volume_from_arrays(dict(npz))
                kind = "cached" if final.cached else "completed"
                record = (kind, time.perf_counter() - t0)
            except BackendError as exc:
                record = ("refused", exc.code) if exc.code == "busy" else ("lost", f"{exc.code}: {exc.message}")
            except (ValueError, OSError) as exc:
                record = ("lost", f"bad result: {exc}")
            with lock:
                outcomes[record[0]].append(record[1])
        client.close()

    threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes["wall"] = time.perf_counter() - t0
    return outcomes


def percentiles(values) -> str:
    if not values:
        return "n/a"
    p = np.percentile(np.asarray(values), [50, 90, 99])
    return f"p50 {p[0]:.2f} s  p90 {p[1]:.2f} s  p99 {p[2]:.2f} s  max {max(values):.2f} s"


def report(name: str, outcomes: dict, total: int) -> bool:
    done = len(outcomes["completed"]) + len(outcomes["cached"])
    print(f"{name}: {total} jobs in {outcomes['wall']:.1f} s -> completed {len(outcomes['completed'])}, "
          f"cache hits {len(outcomes['cached'])}, refused 429 {len(outcomes['refused'])}, "
          f"lost {len(outcomes['lost'])}")
    print(f"  latency (submit -> result): {percentiles(outcomes['completed'] + outcomes['cached'])}")
    for problem in outcomes["lost"][:5]:
        print(f"  LOST: {problem}")
    return done + len(outcomes["refused"]) == total and not outcomes["lost"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--jobs", type=int, default=1, help="jobs per client (default 1)")
    p.add_argument("--steps", type=int, default=2, help="denoising steps per job (default 2: small jobs)")
    p.add_argument("--size", default="64x40", help="photo size WxH (default 64x40)")
    p.add_argument("--max-queue", type=int, default=8, help="the started backend's --max-queue (default 8)")
    p.add_argument("--url", help="use this running backend instead of starting one (memory is then not measured)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a job may take (default 300)")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    params = protocol.PredictParams(steps=args.steps)
    total = args.clients * args.jobs

    proc, sampler = None, None
    with tempfile.TemporaryDirectory(prefix="bench_service_") as cache_dir:
        if args.url:
            url = args.url
        else:
            t0 = time.perf_counter()
            proc, url = start_server(cache_dir, args.max_queue)
            print(f"backend started in {time.perf_counter() - t0:.1f} s at {url} (tiny model, --max-queue "
                  f"{args.max_queue})")
            sampler = MemorySampler(proc.pid)
            idle = sampler.rss()
            sampler.start()
        try:
            print(f"{args.clients} concurrent clients x {args.jobs} job(s), {args.steps} steps, {args.size} photos")
            ok = report("fresh", run_phase(url, args.clients, args.jobs, params, size, args.timeout), total)
            ok &= report("again (same photos)", run_phase(url, args.clients, args.jobs, params, size,
                                                          args.timeout), total)
            if sampler is not None:
                sampler.stop_event.set()
                sampler.join()
                mib = 1024 * 1024
                print(f"server memory (RSS): idle {idle / mib:.0f} MiB, peak {sampler.peak / mib:.0f} MiB, "
                      f"end {sampler.rss() / mib:.0f} MiB")
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print("OK: every job completed or was refused with 429" if ok else "FAIL: some jobs were lost")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
