#!/usr/bin/env python3
"""Host side of the QEMU-level hot-unplug cycles (tests/lib/boot-guest.sh).

usage: qmp-hotplug.py --qmp SOCK --results FILE --pid QEMU_PID
                      --mem-path FILE --size BYTES --bus rp0
                      --device ID --memdev ID --cycles N

Waits until the guest's `kvmfr-unplug_cycles external` prints
"# unplug_cycles: ready" on the results stream (FILE, ttyS1 as QEMU writes
it), then N times: device_del of the ivshmem device and wait for
DEVICE_DELETED (QEMU sends it once the guest has released the device),
object-del of its memory backend, object-add of a fresh memory-backend-file
on the same file (QEMU 7.2 asserts when a backend is re-used) and device_add
of a fresh ivshmem-plain on the same bus, then wait until the guest prints
"# unplug_cycles: back I" (it found the device again).  The data stays: the
backend is the same file.  One line per cycle on stdout, a summary last.
Exit status 0 if all N cycles completed, 1 otherwise (2 if the guest never
became ready).
"""
import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "debug-kernel"))
from qmp import QMP  # noqa: E402  (tests/debug-kernel/qmp.py)


class Results:
    """Follows the results file, line by line."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.part = b""

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return []
        self.off += len(data)
        data = self.part + data
        *done, self.part = data.split(b"\n")
        return [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in done]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def wait_line(res, pid, want, seconds, stop=("@@kvmfr done",)):
    """True once a line starting with `want` arrives; False on timeout,
    QEMU exit or one of the `stop` lines."""
    deadline = time.time() + seconds if seconds else float("inf")
    while time.time() < deadline:
        for ln in res.lines():
            if ln.startswith(want):
                return True
            if ln.startswith(stop):
                return False
        if not alive(pid):
            return False
        time.sleep(0.05)
    return False


def wait_deleted(q, dev_id, seconds):
    deadline = time.time() + seconds
    while True:
        for i, ev in enumerate(q.events):
            if (ev.get("event") == "DEVICE_DELETED" and
                    ev.get("data", {}).get("device") == dev_id):
                del q.events[i]
                return True
        q.events.clear()  # other devices' events (the backend's path, ...)
        msg = q.recv(deadline)
        if msg is None:
            return False
        if "event" in msg:
            q.events.append(msg)


def cmd(q, execute, **arguments):
    reply = q.execute({"execute": execute, "arguments": arguments})
    if "error" in reply:
        raise RuntimeError("%s %s: %s" % (execute, json.dumps(arguments),
                                         reply["error"].get("desc", reply)))
    return reply


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qmp", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--mem-path", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--bus", default="rp0")
    ap.add_argument("--device", required=True)
    ap.add_argument("--memdev", required=True)
    ap.add_argument("--cycles", type=int, default=50)
    # 0: wait for "ready" as long as QEMU runs (a slower machine takes
    # longer to get there; a guest that stops is caught by boot-guest.sh)
    ap.add_argument("--ready-timeout", type=float, default=0)
    ap.add_argument("--cycle-timeout", type=float, default=120)
    a = ap.parse_args()

    q = QMP(a.qmp, timeout=30)
    res = Results(a.results)
    print("# waiting for '# unplug_cycles: ready' from the guest", flush=True)
    if not wait_line(res, a.pid, "# unplug_cycles: ready", a.ready_timeout):
        print("qmp-hotplug: the guest never printed '# unplug_cycles: ready'"
              " (program missing, or the guest stopped)", flush=True)
        return 2

    dev, mem = a.device, a.memdev
    done = 0
    t0 = time.time()
    try:
        for i in range(1, a.cycles + 1):
            c0 = time.time()
            cmd(q, "device_del", id=dev)
            if not wait_deleted(q, dev, a.cycle_timeout):
                raise RuntimeError("no DEVICE_DELETED for %s within %.0f s"
                                   % (dev, a.cycle_timeout))
            t_del = time.time() - c0
            # the old backend is unused now; drop its mapping of the file
            try:
                cmd(q, "object-del", id=mem)
            except RuntimeError as e:
                print("# cycle %d: %s (ignored)" % (i, e), flush=True)
            dev, mem = "%s-%d" % (a.device, i), "%s-%d" % (a.memdev, i)
            cmd(q, "object-add", **{"qom-type": "memory-backend-file",
                                    "id": mem, "mem-path": a.mem_path,
                                    "share": True, "size": a.size})
            cmd(q, "device_add", driver="ivshmem-plain", memdev=mem,
                bus=a.bus, id=dev)
            if not wait_line(res, a.pid, "# unplug_cycles: back %d" % i,
                             a.cycle_timeout,
                             stop=("@@kvmfr end", "@@kvmfr done")):
                raise RuntimeError("the guest did not report the device "
                                   "back within %.0f s" % a.cycle_timeout)
            done = i
            print("# cycle %d: unplugged in %.1f s, back in the guest after"
                  " %.1f s" % (i, t_del, time.time() - c0), flush=True)
            # (the guest reports "back" once its workers are on the new
            # device again; a moment for them to touch and fault)
            time.sleep(0.05)
    except (RuntimeError, EOFError, OSError) as e:
        print("qmp-hotplug: cycle %d: %s" % (done + 1, e), flush=True)
    secs = time.time() - t0
    print("qmp-hotplug: %d of %d device_del/device_add cycles in %.0f s"
          " (%.1f s per cycle)" % (done, a.cycles, secs,
                                  secs / done if done else 0), flush=True)
    return 0 if done == a.cycles else 1


if __name__ == "__main__":
    sys.exit(main())
