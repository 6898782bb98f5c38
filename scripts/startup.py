#!/usr/bin/env python3
"""Cold start to the first rendered screen, and memory, of the kiosk beside
a bare Tauri window, measured in the same run on the same virtual display.

Start-up: from spawning the process to the first frame of the screen that
equals the settled screen (frames are read with xwd from the X server, so
neither app is instrumented). Cold: the page cache is dropped before each
start when the system allows it. Memory: PSS of the app and every process
it started (WebKit's web and network processes), summed, once settled.

Usage: startup.py --runs N --settle SECONDS NAME=COMMAND...
"""
import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import time


def start_display(size):
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", size, "-nolisten", "tcp"],
        pass_fds=[write], stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        return xvfb, ":" + pipe.readline().strip()


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def frame(display):
    shot = subprocess.run(["xwd", "-root", "-silent", "-display", display],
                          capture_output=True, check=True).stdout
    return hashlib.sha256(shot).hexdigest()


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return found


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_once(command, display, settle):
    cold = drop_caches()
    env = dict(os.environ, DISPLAY=display)
    begin = time.monotonic()
    app = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    samples = []
    while time.monotonic() - begin < settle:
        samples.append((time.monotonic() - begin, frame(display)))
    if app.poll() is not None:
        sys.exit(f"{command[0]} exited early with {app.returncode}")
    settled = samples[-1][1]
    # The first frame from which the screen stayed as it settled.
    first = len(samples) - 1
    while first > 0 and samples[first - 1][1] == settled:
        first -= 1
    pids = descendants(app.pid)
    memory = pss_kib(pids)
    os.killpg(app.pid, signal.SIGTERM)
    app.wait()
    gaps = [b[0] - a[0] for a, b in zip(samples, samples[1:])]
    return samples[first][0], memory, len(pids), cold, statistics.median(gaps)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--screen", default="1024x768x24")
    parser.add_argument("apps", nargs="+", metavar="NAME=COMMAND")
    args = parser.parse_args()
    apps = [a.split("=", 1) for a in args.apps]
    xvfb, display = start_display(args.screen)
    results = {name: [] for name, _ in apps}
    try:
        for run in range(args.runs):
            for name, command in apps:  # interleaved, so drift hits both
                result = run_once(command.split(), display, args.settle)
                results[name].append(result)
                print(f"run {run + 1} {name}: {result[0] * 1000:.0f} ms, "
                      f"{result[1] / 1024:.0f} MiB PSS in {result[2]} processes",
                      file=sys.stderr)
    finally:
        xvfb.terminate()
    base = apps[0][0]
    base_start = statistics.median(r[0] for r in results[base])
    base_memory = statistics.median(r[1] for r in results[base])
    cold = all(r[3] for rs in results.values() for r in rs)
    resolution = statistics.median(r[4] for rs in results.values() for r in rs)
    print(f"{args.runs} runs each, {'cold (page cache dropped)' if cold else 'warm'} "
          f"start, screen {args.screen}, frame every {resolution * 1000:.0f} ms (median)")
    print("| app | start to first screen | PSS, all processes | processes |")
    print("|---|---|---|---|")
    for name, _ in apps:
        start = statistics.median(r[0] for r in results[name])
        memory = statistics.median(r[1] for r in results[name])
        count = statistics.median(r[2] for r in results[name])
        print(f"| {name} | {start * 1000:.0f} ms ({start / base_start:.2f}×) | "
              f"{memory / 1024:.0f} MiB ({memory / base_memory:.2f}×) | {count:.0f} |")


if __name__ == "__main__":
    main()
