"""The oracle: the article's generator evaluated the straightforward way (layer by layer, z repeated for
every pixel), on chunks of CHUNK pixels, so a large frame's `[pixels, width]` activations stay bounded
(prev's would be 5.4 GB per layer at 3240 x 3240). A frame of at most CHUNK pixels is one chunk: exactly
the whole-frame evaluation. Chunks start at multiples of CHUNK, a power of two, so they line up with the
blocks torch's kernels split a whole frame into (on one thread the chunked frames measured the same bytes)."""
from __future__ import annotations

import torch

from pipeline.coords import grid_pixels, mapped_pixels

CHUNK = 1 << 16  # pixels per evaluation: prev's [CHUNK, 128] float32 activations are 32 MB


@torch.no_grad()
def reference_frames(gen, z: torch.Tensor, height: int, width: int, scale: float = 8.0,
                     chunk: int = CHUNK, affine=None) -> torch.Tensor:
    """Float frames [B, H, W] in [0, 1], one frame at a time, each `chunk` pixels at a time (all layers per
    chunk). affine: a moving camera's per-frame maps [B, 6] (coords.camera_affine): each frame's grid is mapped
    in float64, then given to the generator in z's dtype."""
    B, P, out = z.shape[0], height * width, None
    for p0 in range(0, P, chunk):
        p1 = min(p0 + chunk, P)
        if affine is None:
            coords = grid_pixels(height, width, scale, p0, p1, dtype=z.dtype).to(z.device)  # [p1 - p0, 3]
        for i in range(B):
            if affine is not None:
                coords = torch.stack(mapped_pixels(affine[i], width, p0, p1), dim=-1).to(z.device, z.dtype)
            v = gen(z[i : i + 1], coords)[0]  # [p1 - p0]
            if out is None:
                out = torch.empty((B, P), dtype=v.dtype, device=v.device)
            out[i, p0:p1] = v
    return out.view(B, height, width)
