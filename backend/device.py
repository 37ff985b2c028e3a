"""Choosing the compute device at the edge: ``--device auto`` takes CUDA when present, else the CPU."""
from __future__ import annotations

import torch

CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU raises ValueError saying what to do."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for but this machine has no CUDA GPU; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device '{name}' (choose one of: {', '.join(CHOICES)}, or cuda:N)") from None
