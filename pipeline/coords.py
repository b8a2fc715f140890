"""Pixel coordinate grids (x, y, r) as the article defines them."""
import torch


def coord_projection(w_xyr, coords_t):
    """W_xyr @ (x, y, r) per pixel: [W, 3] x [3, P] -> float32 [W, P], the same bytes on any thread count.

    A matrix product's rounding depends on how BLAS splits it (threads, blocking), which made frames
    depend on torch.set_num_threads; three products summed in float64 in a fixed order, rounded once, do not.
    """
    w = w_xyr.double()
    c = coords_t.double()
    return (w[:, 0:1] * c[0:1] + w[:, 1:2] * c[1:2] + w[:, 2:3] * c[2:3]).float()


def axis(n: int, scale: float) -> torch.Tensor:
    """n values spanning [-scale, scale]: scale * (i - (n-1)/2) / ((n-1)/2)."""
    if n == 1:
        return torch.zeros(1, dtype=torch.float64)
    half = (n - 1) / 2.0
    return scale * (torch.arange(n, dtype=torch.float64) - half) / half


def grid(height: int, width: int, scale: float = 8.0, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of every pixel, row-major: [height * width, 3] with columns (x, y, r)."""
    x = axis(width, scale)
    y = axis(height, scale)
    yy, xx = torch.meshgrid(y, x, indexing="ij")  # [H, W] each
    r = torch.sqrt(xx * xx + yy * yy)
    return torch.stack([xx, yy, r], dim=-1).reshape(height * width, 3).to(dtype)
