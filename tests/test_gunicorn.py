"""gunicorn.conf.py's process settings, on servers started as `make run` starts them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from .servers import free_port, start_service

GUNICORNC = Path(sys.executable).parent / "gunicornc"


def workers(control_socket: Path) -> list[dict]:
    """The workers the server behind `control_socket` reports (gunicornc)."""
    answer = subprocess.run(
        [str(GUNICORNC), "-s", str(control_socket), "-c", "show workers", "-j"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(answer.stdout)["workers"]


def children(pid: int) -> list[int]:
    """The processes `pid` started (Linux)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_two_servers_of_one_user_keep_their_own_control_sockets(tmp_path):
    ports = [free_port(), free_port()]
    servers = [start_service(port, HOME=str(tmp_path), SEED_DEMO="false") for port in ports]
    sockets = [tmp_path / ".gunicorn" / f"127.0.0.1-{port}.ctl" for port in ports]
    try:
        for server, control_socket in zip(servers, sockets, strict=True):
            assert [worker["pid"] for worker in workers(control_socket)] == children(server.pid)

        servers[0].send_signal(signal.SIGTERM)
        assert servers[0].wait(timeout=30) == 0

        assert not sockets[0].exists()
        assert len(workers(sockets[1])) == 1  # the other server's socket is still there and answers
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
            server.wait(timeout=10)
            server.stdout.close()
