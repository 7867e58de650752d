"""Where a training process sits (rank, world, device) and the few collectives the loop uses;
each is a no-op in a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """Where this process sits: rank of world, and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_processes(device: str) -> Processes:
    """Join the process group when launched by torchrun (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return Processes(rank, world, dev)


def broadcast_text(text: str, procs: Processes) -> str:
    """Rank 0's `text` on every rank."""
    if procs.world == 1:
        return text
    box = [text]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(procs: Processes) -> None:
    if procs.world > 1:
        dist.barrier()


def gather(value: object, procs: Processes) -> list:
    """`value` of every rank, in rank order."""
    if procs.world == 1:
        return [value]
    out: list = [None] * procs.world
    dist.all_gather_object(out, value)
    return out


def all_sum(values: list[float], procs: Processes) -> list[float]:
    """Element-wise sums over ranks, as float64."""
    tensor = torch.tensor(values, dtype=torch.float64, device=procs.device)
    if procs.world > 1:
        dist.all_reduce(tensor)
    return tensor.tolist()
