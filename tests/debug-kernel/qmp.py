#!/usr/bin/env python3
"""Tiny QMP client for hot-plug tests.

usage: qmp.py SOCKET STEP [STEP...]

Each STEP is either a QMP command as JSON, e.g.
    '{"execute": "device_del", "arguments": {"id": "shm0"}}'
or "wait:EVENT[:SECONDS]" to wait for an asynchronous event (default 60 s),
e.g. wait:DEVICE_DELETED.  Steps run in order on one connection (QMP events
are only delivered to a connected client, so a device_del and the wait for
its DEVICE_DELETED must be in the same call).  Replies and events are printed
one JSON per line.  Exit status: 0, 1 on an error reply, 2 on a timeout.

The guest has to cooperate for device_del of a device behind a
pcie-root-port: QEMU presses the slot's attention button, the guest's pciehp
powers the slot off (after its 5 s grace period) and only then QEMU deletes
the device and emits DEVICE_DELETED.
"""
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path, timeout=10):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.buf = b""
        self.events = []
        self.recv(None)                       # greeting
        self.execute({"execute": "qmp_capabilities"})

    def recv(self, deadline):
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
            else:
                self.sock.settimeout(None)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise EOFError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd):
        self.sock.sendall(json.dumps(cmd).encode() + b"\n")
        while True:
            msg = self.recv(None)
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def wait(self, name, seconds):
        deadline = time.time() + seconds
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            msg = self.recv(deadline)
            if msg is None:
                return None
            if "event" in msg:
                self.events.append(msg)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 64
    q = QMP(argv[1])
    for step in argv[2:]:
        if step.startswith("wait:"):
            parts = step.split(":")
            secs = float(parts[2]) if len(parts) > 2 else 60.0
            ev = q.wait(parts[1], secs)
            if ev is None:
                print(json.dumps({"timeout": parts[1], "seconds": secs}))
                return 2
            print(json.dumps(ev))
        else:
            reply = q.execute(json.loads(step))
            print(json.dumps(reply))
            if "error" in reply:
                return 1
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
