"""Where the computation runs: device choice, bf16 autocast, and torchrun processes."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; a no-op elsewhere."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_strict_fp32(strict: bool) -> dict[str, bool]:
    """Under ``strict`` turn TF32 off for CUDA matmuls and cuDNN convolutions (Ampere and
    later otherwise run fp32 convolutions in TF32); returns the flags now in force, which a
    run records in config.json. Not strict: the flags are left as they are."""
    if strict:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return {"matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32)}


def precision_label(amp: bool, tf32: dict[str, bool]) -> str:
    """``bf16-autocast``, ``fp32`` (strict: no TF32 anywhere) or ``fp32+tf32``."""
    if amp:
        return "bf16-autocast"
    return "fp32+tf32" if any(tf32.values()) else "fp32"


@dataclass
class Distributed:
    """This process's place among ``torchrun`` processes (one process: rank 0 of 1)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_name: str) -> Distributed:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE > 1``): nccl on
    CUDA, gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    here = False
    if not dist.is_initialized():
        cuda = device_name.startswith("cuda") or (device_name == "auto"
                                                 and torch.cuda.is_available())
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        here = True
    return Distributed(dist.get_world_size(), dist.get_rank(), local, here)
