"""Data-parallel runs under PyTorch's own launcher (`torchrun` / `torch.distributed.run`).

Every rank runs the same program. The launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT) says who we are; NCCL joins CUDA ranks, gloo joins CPU ranks, so the whole
path runs on a CPU in the tests. Decisions that change control flow (stop, report) are taken
together in one small collective per step on a CPU (gloo) group, so no rank can leave a
collective the others still wait in. Only rank 0 writes files or emits events.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from engine.errors import PrunelabError
from engine.events import StopSignal, stop_requested

# The launcher variables; LOCAL_WORLD_SIZE is the ranks on this machine.
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
# A collective waits this long for a missing rank before it fails (a rank that is evaluating
# alone, e.g. a sweep's refinement, must not trip it).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; World() is a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """Only rank 0 writes checkpoints, metrics and run files, and reports events."""
        return self.rank == 0


SINGLE = World()


def launched_by_torchrun(env: dict[str, str] | os._Environ = os.environ) -> bool:
    return "WORLD_SIZE" in env and "RANK" in env


def world_from_env(env: dict[str, str] | os._Environ = os.environ) -> World:
    """The launcher's view of this process; SINGLE when not started by torchrun."""
    if not launched_by_torchrun(env):
        return SINGLE
    try:
        values = {
            k: int(env.get(k, "0" if k != "LOCAL_WORLD_SIZE" else env["WORLD_SIZE"]))
            for k in ENV_KEYS
        }
    except ValueError:
        shown = ", ".join(f"{k}={env.get(k)!r}" for k in ENV_KEYS)
        raise PrunelabError(f"the torchrun environment is not numeric: {shown}") from None
    world = World(
        values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"]
    )
    if not (0 <= world.rank < world.world_size and 0 <= world.local_rank < world.world_size):
        raise PrunelabError(f"inconsistent torchrun environment: {world}")
    return world


def rank_device(device: torch.device, world: World) -> torch.device:
    """Each CUDA rank drives the GPU numbered by its LOCAL_RANK; CPU ranks share the CPU."""
    if device.type != "cuda" or not world.distributed:
        return device
    if device.index not in (None, 0):
        raise PrunelabError(
            f"with {world.world_size} ranks each rank uses cuda:LOCAL_RANK; pass --device cuda, "
            f"not {device}"
        )
    if world.local_rank >= torch.cuda.device_count():
        raise PrunelabError(
            f"rank {world.rank} wants cuda:{world.local_rank} but this machine has "
            f"{torch.cuda.device_count()} GPU(s); use --nproc-per-node <= the GPU count"
        )
    return torch.device("cuda", world.local_rank)


class Group:
    """The joined process group: collectives for training (NCCL or gloo) and a gloo group for
    the per-step decisions, which live on the host so they never wait for the GPU."""

    def __init__(self, world: World, device: torch.device) -> None:
        self.world = world
        self.device = device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        self._owner = False
        if world.distributed and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(self.backend, timeout=COLLECTIVE_TIMEOUT)
            self._owner = True
        self.control = None
        if world.distributed and self.backend != "gloo":
            self.control = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)

    def close(self) -> None:
        if self._owner and dist.is_initialized():
            dist.destroy_process_group()
            self._owner = False

    # ---- decisions taken together ----------------------------------------------------------
    def agree(self, values: Sequence[float]) -> torch.Tensor:
        """Every rank's `values` as a (world, len) CPU tensor; one host-side collective."""
        mine = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if not self.world.distributed:
            return mine.unsqueeze(0)
        rows = [torch.empty_like(mine) for _ in range(self.world.world_size)]
        dist.all_gather(rows, mine, group=self.control)
        return torch.stack(rows)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (on the training backend's device)."""
        if self.world.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's BatchNorm statistics (each rank updated them with its own
        shard since the last forward), so evaluation and checkpoints see one model."""
        if not self.world.distributed:
            return
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (e.g. the run folder it created)."""
        if not self.world.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.world.distributed:
            return [value]
        out: list[Any] = [None] * self.world.world_size
        dist.all_gather_object(out, value, group=self.control)
        return out


class SharedStop:
    """A stop signal the ranks agree on: `sync()` (a collective, called at the same place on
    every rank) ORs every rank's local stop; calling the object reads the agreed value only, so it
    can be handed to code that checks it an unequal number of times on different ranks."""

    def __init__(self, group: Group, local: StopSignal) -> None:
        self.group = group
        self.local = local
        self.agreed = False

    def sync(self, *extra: float) -> torch.Tensor:
        """Share the local stop flag plus `extra` numbers; returns the (world, 1+len) table."""
        table = self.group.agree([float(stop_requested(self.local)), *extra])
        self.agreed = self.agreed or bool(table[:, 0].any())
        return table

    def __call__(self) -> bool:
        return self.agreed


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """In a launched worker, SIGINT (Ctrl-C, forwarded by torchrun) and SIGTERM (torchrun
    shutting the workers down because one failed) set `stop` instead of killing the process, so
    the ranks stop together at the next step and rank 0 saves. A second signal kills at once."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        stop.set()
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A SHA-256 over a state dict's names and bytes: equal on every rank iff the models are."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def describe_batch(batch_size: int, lr: float, world: World) -> str:
    """The sentence every distributed run states about its batch and learning rate."""
    per_rank = batch_size / world.world_size
    shown = f"{per_rank:g}" if per_rank.is_integer() else f"~{per_rank:.1f}"
    return (
        f"{world.world_size} ranks x {shown} images = global batch {batch_size}; "
        f"the gradient is the mean over the global batch, so lr {lr:g} means what it means on "
        "one device (not scaled)"
    )


def launcher_args(devices: int, argv: Sequence[str], module: str = "tui.cli") -> list[str]:
    """torchrun's arguments for `devices` workers on this machine running `python -m module
    argv...`: one node, a free port picked by the c10d rendezvous (`--standalone`)."""
    return ["--standalone", f"--nproc-per-node={devices}", "-m", module, *argv]


def launch(devices: int, argv: Sequence[str], module: str = "tui.cli") -> int:
    """Run `argv` on `devices` local workers through torch.distributed.run; its exit code.

    The launcher runs in this process (as `torchrun` would): Ctrl-C reaches it, it forwards the
    signal to the workers, who stop together and save; 130 is returned then. A worker's failure
    (its own message is already on stderr) returns that worker's exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the workers share this machine's cores
    try:
        run(parse_args(launcher_args(devices, argv, module)))
    except SignalException:
        return 130
    except ChildFailedError as exc:
        codes = [failure.exitcode for failure in exc.failures.values()]
        return next((code for code in codes if code > 0), 1)
    return 0
