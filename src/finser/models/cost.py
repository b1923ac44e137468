"""What a network costs per frame: every operation counted, so FINs that avoid matmuls are not free.

torch's ``FlopCounterMode`` counts matmuls and convolutions only (2 per multiply-add) and leaves out matrix-vector
products, so a FIN built from pointwise ops and ``mv`` would read as 0 FLOPs. The study's figures are matmul and
conv counts of networks that are almost nothing else, so both ways agree for them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

FREE = {
    "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "unsqueeze", "squeeze", "expand", "slice",
    "select", "split", "split_with_sizes", "chunk", "unbind", "alias", "detach", "as_strided", "unflatten",
    "flatten", "_reshape_alias", "empty", "empty_like", "zeros", "ones", "lift_fresh", "clone", "copy_",
    "contiguous", "_to_copy", "to", "max_pool1d_with_indices", "_log_softmax",
}  # fmt: skip
MATMULS = {"mm", "addmm", "bmm", "matmul", "convolution", "_convolution", "linear", "baddbmm"}


class ElementwiseCounter(TorchDispatchMode):
    """One operation per element each non-matmul aten op writes (pointwise) or reads (reductions); 2 per
    multiply-add for matrix-vector products; views and copies free; transcendental functions count as one."""

    def __init__(self) -> None:
        super().__init__()
        self.operations = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in ("mv", "dot", "vdot"):
            self.operations += 2 * args[0].numel()
        elif name not in MATMULS and name not in FREE:
            read = max((a.numel() for a in args if isinstance(a, torch.Tensor)), default=0)
            outputs = out if isinstance(out, tuple | list) else (out,)
            written = max((o.numel() for o in outputs if isinstance(o, torch.Tensor)), default=0)
            self.operations += max(read, written)
        return out


def count_operations(net: nn.Module, frames: torch.Tensor) -> tuple[int, int]:
    """(matmul/conv FLOPs by FlopCounterMode, all other operations by :class:`ElementwiseCounter`) of one forward."""
    with torch.no_grad():
        with FlopCounterMode(display=False) as flops:
            net(frames)
        counter = ElementwiseCounter()
        with counter:
            net(frames)
    return flops.get_total_flops(), counter.operations


def operations_per_frame(net: nn.Module, frames: torch.Tensor) -> float:
    """All operations (matmul FLOPs + the rest) per input frame."""
    matmul, other = count_operations(net, frames)
    return (matmul + other) / len(frames)
