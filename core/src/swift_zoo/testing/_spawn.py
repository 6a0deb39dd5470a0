"""Run a function on N local ranks of a gloo (CPU) process group and collect what each rank returns.

Used by :func:`~swift_zoo.testing.check_fsdp2_equivalence` and by the repository's ``tests_distributed``.
``run_on_ranks("package.module:run", payload, world_size=2)`` spawns ``world_size`` processes with
``torch.multiprocessing`` (start method ``spawn``), each of which

* joins a gloo process group whose store listens on ``127.0.0.1`` at a free port (gloo itself is
  pinned to the loopback interface with ``GLOO_SOCKET_IFNAME``), with a collective timeout;
* calls ``target(rank, world_size, payload)`` (``target`` is a ``"module:function"`` string imported
  in the child, so it must live in a module on ``sys.path``, not in a test module);
* saves the returned object with ``torch.save`` and leaves the group (``destroy_process_group``).

The parent waits at most ``timeout`` seconds, kills whatever is left after that, and re-raises a
child's exception with its traceback. The children inherit the parent's ``sys.path``, so ``target`` may
live in any module the parent can import (not in ``__main__``).
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def gloo_unavailable_reason() -> str | None:
    """Why a gloo process group cannot be made here, or ``None`` when it can."""
    try:
        import torch.distributed as dist
    except ImportError as exc:  # pragma: no cover - torch is a dependency of the packages under test
        return f"torch.distributed cannot be imported: {exc}"
    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return "the gloo backend is not available in this torch build"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def loopback_interface() -> str | None:
    """The name of the loopback network interface (``lo`` on Linux, ``lo0`` on macOS), if found."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):  # pragma: no cover - platform without if_nameindex
        return None
    for candidate in ("lo", "lo0"):
        if candidate in names:
            return candidate
    return None


def loopback_env() -> dict[str, str]:
    """Environment that keeps every connection of a local process group on the loopback interface."""
    env = {"MASTER_ADDR": LOOPBACK}
    interface = loopback_interface()
    if interface is not None:
        env["GLOO_SOCKET_IFNAME"] = interface
    return env


def _resolve(target: str):
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _rank_entry(rank: int, world_size: int, port: int, out_dir: str, target: str, payload: Any,
                collective_timeout_s: float) -> None:
    """What each spawned process runs (module level, so ``spawn`` can pickle it)."""
    os.environ.update(loopback_env())
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://{LOOPBACK}:{port}", rank=rank, world_size=world_size,
        timeout=timedelta(seconds=collective_timeout_s),
    )
    try:
        result = _resolve(target)(rank, world_size, payload)
        dist.barrier()
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    # Done and saved: leave without the interpreter's teardown, where torch 2.13's gloo now and then aborts the
    # process ("terminate called without an active exception", seen in about 1 of 5 CI runs) after the work is
    # over. An exception above still propagates and fails the rank.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_on_ranks(target: str, payload: Any = None, *, world_size: int = 2, timeout: float = 240.0,
                 collective_timeout_s: float = 60.0) -> list[Any]:
    """``[target(rank, world_size, payload) for rank in range(world_size)]``, each run in its own process."""
    import torch
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="swiftzoo-ranks-") as out_dir:
        context = mp.start_processes(
            _rank_entry, args=(world_size, free_port(), out_dir, target, payload, collective_timeout_s),
            nprocs=world_size, join=False, start_method="spawn",
        )
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=max(0.1, min(5.0, deadline - time.monotonic()))):
                if time.monotonic() > deadline:
                    message = f"{target} on {world_size} ranks did not finish within {timeout:.0f} s"
                    raise TimeoutError(message)
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join(5)
        return [torch.load(Path(out_dir) / f"rank{rank}.pt", weights_only=False) for rank in range(world_size)]
