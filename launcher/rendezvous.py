"""MASTER_PORT for a DDP job: derived from the job id, checked free on the master node.

Lightning's SLURM default (15000 + last four digits of the job id) lets two jobs whose ids
end alike collide on a shared node.  Here the batch step (which SLURM runs on the first
node of the allocation, the node Lightning picks as MASTER_ADDR) derives a port from the
job id in ``[PORT_LOW, PORT_HIGH)`` -- below Linux's ephemeral range (32768+), so a port
the kernel hands out for outgoing connections cannot take it -- probes that port and the
following ones until one binds, and exports it; ``srun`` passes the same value to every
rank on every node, so all ranks agree without talking to each other first.

Run as ``python -m launcher.rendezvous`` (prints the port); it reads ``SLURM_JOB_ID``.
"""

from __future__ import annotations

import os
import socket
import sys
import zlib

PORT_LOW = 10000
PORT_HIGH = 32768
PROBES = 64


def derive_port(job_id: str) -> int:
    """A port in ``[PORT_LOW, PORT_HIGH)`` from the job id (array ids like ``12_3`` too)."""
    digits = str(job_id).strip()
    value = int(digits) if digits.isdigit() else zlib.crc32(digits.encode())
    return PORT_LOW + value % (PORT_HIGH - PORT_LOW)


def port_is_free(port: int, host: str = "") -> bool:
    """True when a TCP socket can bind ``port`` on this machine now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(job_id: str, probes: int = PROBES) -> int:
    """The derived port, or the next free one after it (wrapping inside the range)."""
    start = derive_port(job_id)
    span = PORT_HIGH - PORT_LOW
    for k in range(probes):
        port = PORT_LOW + (start - PORT_LOW + k) % span
        if port_is_free(port):
            return port
    return start  # all probed ports busy: fall back to the derived one (the bind error will name it)


def main() -> int:
    job_id = os.environ.get("SLURM_JOB_ID")  # unique per array task too
    if not job_id:
        print("launcher.rendezvous: SLURM_JOB_ID is not set (run inside a SLURM job)", file=sys.stderr)
        return 2
    print(pick_port(job_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
