"""Float intensities in [0, 1] -> uint8 frames (the one rounding rule every torch path uses)."""
import torch


def to_uint8(x: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """round(255 * x) clamped to 0..255; invert gives 255 - that (dark strokes on white)."""
    q = torch.floor(x * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
    return 255 - q if invert else q
