"""The oracle: the article's generator evaluated the straightforward way (whole frame, layer by layer)."""
from __future__ import annotations

import torch

from pipeline.coords import grid


@torch.no_grad()
def reference_frames(gen, z: torch.Tensor, height: int, width: int, scale: float = 8.0) -> torch.Tensor:
    """Float frames [B, H, W] in [0, 1]: z repeated for every pixel, `[pixels, width]` tensors per layer."""
    coords = grid(height, width, scale, dtype=z.dtype).to(z.device)  # [H*W, 3]
    out = torch.cat([gen(z[i : i + 1], coords) for i in range(z.shape[0])])  # [B, H*W], a frame at a time
    return out.view(z.shape[0], height, width)
