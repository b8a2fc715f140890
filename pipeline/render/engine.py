"""The render engine: picks a path (reference, torch tiles, fused CPU kernel, Triton) and renders frames.

Every frame is a pure function of (generator, z, size, scale, camera): the same bytes whatever the batch size,
tile size or thread count for a given path. A moving camera (pipeline.scene.camera) reaches every path as one
affine map per frame (coords.camera_affine); the fast paths make each pixel's coordinates from it as they go.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.coords import camera_affine, grid_t, projected_grid
from pipeline.devices import resolve_device  # noqa: F401  (the render package exports it)
from pipeline.errors import UserError
from pipeline.render import cpu_fused, triton_kernel
from pipeline.render.paths import PATHS
from pipeline.render.quantize import to_uint8
from pipeline.render.reference import reference_frames
from pipeline.render.torch_tiles import TorchTiles

from pipeline.scene.preflight import MAX_SIDE  # noqa: E402 (the one limit every job's preflight uses)


def check_frame_size(height: int, width: int) -> None:
    for name, n in (("height", height), ("width", width)):
        if not isinstance(n, int) or n < 1 or n > MAX_SIDE:
            raise UserError(f"frame {name} must be an integer between 1 and {MAX_SIDE}, got {n}")


def available_paths(family: str, device: torch.device) -> list[str]:
    """Paths that can run here for this family, fastest first (reference last)."""
    paths = []
    if device.type == "cuda" and family == "resnet" and triton_kernel.available():
        paths.append("triton")
    if device.type == "cpu" and cpu_fused.available(family):
        paths.append("cpu-fused")
    paths += ["torch", "reference"]
    return paths


@dataclass(frozen=True)
class FrameSpec:
    height: int
    width: int
    scale: float = 8.0  # coordinate half-range; larger zooms out


class Renderer:
    """Renders frames of one generator at one size with one path.

    `path="auto"` picks the fastest available: Triton on CUDA (resnet), the family's fused C kernel on the CPU,
    else the torch tile path; an explicit path that cannot run here is an error.
    """

    def __init__(self, gen, height: int, width: int, scale: float = 8.0, path: str = "auto",
                 device: str | torch.device = "auto", tile: int | None = None, threads: int | None = None):
        check_frame_size(height, width)
        if not np.isfinite(scale) or scale <= 0:
            raise UserError(f"scale must be a positive number, got {scale}")
        if path not in PATHS:
            raise UserError(f"unknown render path {path!r}; choose one of {', '.join(PATHS)}")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.gen = gen.to(self.device).eval()
        self.spec = FrameSpec(height, width, float(scale))
        family = gen.cfg.family
        options = available_paths(family, self.device)
        auto = path == "auto"
        if auto:
            path = options[0]
        elif path not in options:
            raise UserError(f"render path {path!r} is not available for a {family} generator on {self.device}; "
                            f"available: {', '.join(options)}")
        self.path = path
        P = height * width
        self._impl = None
        self._static = None  # the static camera's coordinates (below), made on first use
        if path == "cpu-fused":
            kernel = cpu_fused.ResnetKernel if family == "resnet" else cpu_fused.PrevKernel
            self._impl = kernel(gen, threads=threads, tile=tile or 16384)
        if path == "triton":
            self._impl = triton_kernel.TritonResnet(gen, self.device)
        elif path == "torch":
            self._impl = self._torch_tiles(tile)
        self.pixels = P
        # Auto-selected Triton's moving-camera kernel is checked on the first moving frame (a static render never
        # compiles it): probe_camera, as probe checks the static one here.
        self._camera_check = (tile,) if auto and path == "triton" else None
        if auto and path == "triton":
            self._check_triton(tile)

    @property
    def coords_t(self) -> torch.Tensor:
        """The static camera's coordinates [3, P] on the device (torch and Triton paths; numpy for prev's fused
        kernel), or for resnet's fused kernel its coordinate projections [W, P] (numpy): the frame-invariant part of
        the first layer (prev's 128 channels would be 600 MB at 1080x1080, so its kernel projects), made once per size
        and scale a chunk of rows at a time (bounded temporaries), when the first static frame renders. The
        reference builds its own coordinates a chunk at a time; a moving camera needs none of these."""
        if self._static is None:
            H, W, scale = self.spec.height, self.spec.width, self.spec.scale
            if self.path == "cpu-fused" and self.gen.cfg.family == "prev":
                self._static = grid_t(H, W, scale).numpy()  # prev's kernel projects its 128 channels itself
            elif self.path == "cpu-fused":
                with torch.no_grad():
                    self._static = projected_grid(self.gen.input.xyr.weight.detach(), H, W, scale).numpy()
            else:
                self._static = grid_t(H, W, scale).to(self.device)
        return self._static

    def affine(self, camera) -> np.ndarray:
        """Per-frame affine maps [B, 6] float64 of a camera track (scene.camera.CameraTrack) at this size and scale."""
        return camera_affine(self.spec.height, self.spec.width, self.spec.scale, camera.zoom, camera.pan,
                             camera.rotate)

    def _torch_tiles(self, tile: int | None) -> TorchTiles:
        # matrix width in pixels x frames: large on a GPU; on the CPU small enough to stay in cache (prev's
        # 128 x 2048 activations are 1 MB: a 1080 frame took 1.65 s at 2048 wide, 2.1-2.7 s at 4096-16384)
        if self.device.type == "cuda":
            default = 1 << 22 if self.gen.cfg.family == "resnet" else 1 << 18
        else:
            default = 1 << 16 if self.gen.cfg.family == "resnet" else 1 << 11
        return TorchTiles(self.gen, self.device, tile=tile or default)

    def _check_triton(self, tile: int | None) -> None:
        """Auto-selected Triton must compile, run and be right here; otherwise fall back to the torch path (with
        a warning) rather than fail or spoil a render, as stylegan's bias_act falls back to its reference."""
        self._fall_back_if(self.probe(), "kernel", tile, stacklevel=4)

    def _fall_back_if(self, problem: str | None, what: str, tile: int | None, stacklevel: int) -> None:
        """After a failed check (problem is not None): warn, and render with the torch path from now on."""
        if problem:
            warnings.warn(f"the {self.path} {what} failed its check here ({problem}); using the torch path "
                          f"instead", RuntimeWarning, stacklevel=stacklevel)
            self.path = "torch"
            self._impl = self._torch_tiles(tile)

    @torch.no_grad()
    def probe(self, pixels: int = 64) -> str | None:
        """Run this path's variants a render uses (float, uint8, inverted uint8) on the first `pixels` pixels of
        two frames, wait for the device, and compare with the reference: None when right, else what went
        wrong (a compile or launch error, a device fault, or values off by more than 1e-4 / one level)."""
        if self.path in ("reference", "cpu-fused"):
            return None  # the oracle itself; the C kernel is checked against it by the test suite
        try:
            coords = self.coords_t[:, :pixels].contiguous()
            z = torch.randn(2, self.gen.cfg.z_dim, generator=torch.Generator().manual_seed(0))
            zb = self.z_bias(z)
            got = self._impl(coords, zb, None)
            got_u8 = self._impl(coords, zb, False)
            got_inv = self._impl(coords, zb, True)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            ref = _reference_at(self.gen, z, coords.t())  # [2, pixels], float64 on the CPU
        except Exception as exc:  # any compile, launch or device failure
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        err = float((got.double().cpu() - ref).abs().max())
        if not err < 1e-4:
            return f"values differ from the reference by {err:.3g}"
        for out, invert in ((got_u8, False), (got_inv, True)):
            want = to_uint8(ref.float(), invert).int()
            if int((out.cpu().int() - want).abs().max()) > 1:
                return f"{'inverted ' if invert else ''}uint8 frames differ from the reference by more than one level"
        return None

    @torch.no_grad()
    def probe_camera(self, side: int = 8) -> str | None:
        """probe() for the moving-camera variant: two side x side frames under a zoomed, panned and turned camera
        against the float64 reference at the mapped coordinates; None when right, else what went wrong."""
        if self.path in ("reference", "cpu-fused"):
            return None
        from pipeline.coords import mapped_pixels

        try:
            aff = camera_affine(side, side, self.spec.scale, np.array([3.0, 0.5]), np.array([[0.5, -1.0], [0, 0]]),
                                np.array([30.0, 90.0]))
            z = torch.randn(2, self.gen.cfg.z_dim, generator=torch.Generator().manual_seed(0))
            got = self._impl.moving(aff, side, side * side, self.z_bias(z), None)
            got_inv = self._impl.moving(aff, side, side * side, self.z_bias(z), True)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            coords = [torch.stack(mapped_pixels(aff[i], side, 0, side * side), -1) for i in range(2)]  # float64
            ref = torch.cat([_reference_at(self.gen, z[i:i + 1], coords[i]) for i in range(2)])
        except Exception as exc:  # any compile, launch or device failure
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        err = float((got.double().cpu() - ref).abs().max())
        if not err < 1e-4:
            return f"moving-camera values differ from the reference by {err:.3g}"
        if int((got_inv.cpu().int() - to_uint8(ref.float(), True).int()).abs().max()) > 1:
            return "moving-camera uint8 frames differ from the reference by more than one level"
        return None

    def _check_camera_path(self) -> None:
        tile, self._camera_check = self._camera_check[0], None
        self._fall_back_if(self.probe_camera(), "kernel's moving camera", tile, stacklevel=5)

    @torch.no_grad()
    def z_bias(self, z: torch.Tensor) -> torch.Tensor:
        """Per-frame part of the first layer: Wz (z_scale * z) + b, [B, W] float32.

        Each row is a float64 dot product rounded once to float32: a matrix product's rounding depends on
        how many rows it gets (BLAS picks other kernels), which would make a frame's bytes depend on the
        batch it was rendered in.
        """
        inp = self.gen.input
        zs = (z.to(self.device, torch.float32) * inp.z_scale).double()  # [B, Z], scaled as the oracle does
        w, b = inp.z.weight.double(), inp.z.bias.double()  # [W, Z], [W]
        return ((zs[:, None, :] * w[None]).sum(-1) + b).float().contiguous()  # [B, W]

    def _check_z(self, z) -> torch.Tensor:
        z = torch.as_tensor(np.asarray(z, dtype=np.float32) if not torch.is_tensor(z) else z, dtype=torch.float32)
        z_dim = self.gen.cfg.z_dim
        if z.dim() == 1:
            z = z[None]
        if z.dim() != 2 or z.shape[1] != z_dim:
            raise UserError(f"latents must have shape [frames, {z_dim}], got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise UserError("latents contain NaN or inf")
        return z

    def _check_camera(self, camera, frames: int) -> np.ndarray | None:
        if camera is None:
            return None
        if len(camera) != frames:
            raise ValueError(f"the camera has {len(camera)} frames for {frames} latents")
        return self.affine(camera)

    @torch.no_grad()
    def render_float(self, z, camera=None) -> torch.Tensor:
        """Float intensities [B, H, W] in [0, 1] on the CPU. camera: each frame's camera (a CameraTrack of B
        frames), or None for the static framing."""
        z = self._check_z(z)
        return self._render(z, invert=None, affine=self._check_camera(camera, z.shape[0]))

    @torch.no_grad()
    def render(self, z, invert: bool = False, camera=None) -> np.ndarray:
        """uint8 frames [B, H, W]; invert gives dark strokes on white (the article's "normal" renders); camera as
        in render_float."""
        z = self._check_z(z)
        return self._render(z, invert=bool(invert), affine=self._check_camera(camera, z.shape[0])).numpy()

    @torch.no_grad()
    def render_tensor(self, z, invert: bool = False, camera=None) -> torch.Tensor:
        """render()'s uint8 frames [B, H, W] as a tensor where they were made (on a GPU, not yet copied: for a
        caller that copies them to the host itself, render.host_ring; on the CPU the same bytes as render())."""
        z = self._check_z(z)
        return self._render(z, invert=bool(invert), affine=self._check_camera(camera, z.shape[0]), host=False)

    def _render(self, z: torch.Tensor, invert: bool | None, affine: np.ndarray | None = None,
                host: bool = True) -> torch.Tensor:
        H, W, B = self.spec.height, self.spec.width, z.shape[0]
        if affine is not None and self._camera_check is not None:
            self._check_camera_path()
        if self.path == "reference":
            v = reference_frames(self.gen, z.to(self.device), H, W, self.spec.scale, affine=affine)
            out = v if invert is None else to_uint8(v, invert)
        elif self.path == "cpu-fused":
            zb = self.z_bias(z).numpy()
            out = np.empty((B, self.pixels), np.float32 if invert is None else np.uint8)
            if affine is None:
                self._impl(self.coords_t, zb, out, invert=bool(invert))
            else:
                w_xyr = self.gen.input.xyr.weight.detach().double().cpu().numpy()
                self._impl.moving(affine, w_xyr, W, zb, out, invert=bool(invert))
            out = torch.from_numpy(out)
        elif affine is None:
            out = self._impl(self.coords_t, self.z_bias(z), invert)
        else:
            out = self._impl.moving(affine, W, self.pixels, self.z_bias(z), invert)
        out = out.reshape(B, H, W)
        return out.cpu() if host else out

    def close(self) -> None:
        if hasattr(self._impl, "close"):
            self._impl.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# On the CPU a frame of this many pixels or more is enough work to hide any per-call overhead, so such
# frames render one per call: progress (and Ctrl-C) then acts per frame instead of per batch.
CPU_FRAME_AT_A_TIME = 256 * 256


def _reference_at(gen, z: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The generator in float64 on the CPU at given coordinates [P, 3]: [B, P] (the probe's oracle)."""
    import copy

    ref = copy.deepcopy(gen).to("cpu").double()
    return ref(z.double(), coords.to("cpu").double())


def default_batch(height: int, width: int, device: torch.device) -> int:
    """Frames per batch: enough work per call to hide overheads, with output memory bounded (~64 MB CPU);
    one on the CPU from CPU_FRAME_AT_A_TIME pixels up."""
    if device.type == "cpu" and height * width >= CPU_FRAME_AT_A_TIME:
        return 1
    budget = (512 if device.type == "cuda" else 64) * 2**20
    return int(max(1, min(64, budget // (height * width * 4))))

