"""Where panels go in a composed frame: C x R layouts, panel origins, caption strips."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UserError
from pipeline.scene.preflight import preflight


@dataclass(frozen=True)
class Geometry:
    """Where everything goes in a comparison frame (all in pixels)."""
    columns: int
    rows: int
    panel: int                     # panel width (and height, unless panel_height is given)
    caption: int                   # height of the caption strip under each panel
    panel_height: int | None = None

    @property
    def ph(self) -> int:
        """A panel's height."""
        return self.panel if self.panel_height is None else self.panel_height

    @property
    def width(self) -> int:
        return self.columns * self.panel

    @property
    def height(self) -> int:
        return self.rows * (self.ph + self.caption)

    def origin(self, i: int) -> tuple[int, int]:
        """(x, y) of panel i's top-left corner; panels fill rows left to right, top to bottom."""
        row, col = divmod(i, self.columns)
        return col * self.panel, row * (self.ph + self.caption)


def caption_height(panel: int) -> int:
    """Height of the caption strip under a panel: about 7.5% of the panel, at least 12 px, always even (80 at 1080)."""
    return 2 * max(6, round(panel * 0.0375))


def parse_layout(layout: str | None, n: int) -> tuple[int, int]:
    """"CxR" -> (columns, rows), checked to hold n panels; None -> (n, 1)."""
    if layout is None:
        return n, 1
    text = str(layout).strip().lower()
    cols, sep, rows = text.partition("x")
    try:
        c, r = int(cols), int(rows)
    except ValueError:
        c = r = 0
    if not sep or c < 1 or r < 1:
        raise UserError(f"bad layout {layout!r}; give columns x rows such as {n}x1")
    if c * r < n:
        room = f"{c * r} panel" + ("s" if c * r != 1 else "")
        raise UserError(f"layout {c}x{r} has room for {room} but {n} checkpoints were given; "
                        f"use a larger layout such as {n}x1")
    return c, r



FIT_WIDTH = 1920  # a comparison's default frame fits this wide: what phones, players and upload sites take
LARGEST_PANEL = 1080


def auto_panel(columns: int) -> int:
    """The default panel side: the largest even size up to LARGEST_PANEL with `columns` panels within FIT_WIDTH
    (1080 for one panel, 960 for two, 640 for three, 480 for four in a row)."""
    return max(2, min(LARGEST_PANEL, FIT_WIDTH // max(columns, 1)) // 2 * 2)


def compare_geometry(panel_size, layout: str | None, n: int, frames: int, fmt: str | None) -> Geometry:
    """The frame of a comparison of n panels (panel_size 1080 or "1080x1350"; None: auto_panel for the layout's
    columns), through the shared preflight (size, format, memory)."""
    from pipeline.scene.canvas import canvas_text, parse_canvas

    if panel_size is None:
        panel_size = auto_panel(parse_layout(layout, n)[0])
    pw, ph = parse_canvas(panel_size, "--panel-size", "panel_size")
    if fmt == "mp4" and (pw % 2 or ph % 2):
        raise UserError(f"--panel-size must be even for H.264 yuv420p, got {canvas_text(pw, ph)}; use "
                        f"{canvas_text(pw + pw % 2, ph + ph % 2)}", key="panel_size")
    columns, rows = parse_layout(layout, n)
    geo = Geometry(columns, rows, pw, caption_height(min(pw, ph)), ph)
    preflight(geo.width, geo.height, frames, fmt, panels=n,
              what=f"the frame of {columns}x{rows} panels of --panel-size {panel_size}", key="panel_size")
    return geo


def grid_geometry(settings, grid: str, fmt: str | None) -> tuple[Geometry, list]:
    """A --grid walk (jobs.compare.render_walk_grid) checked before anything loads: its walk settings, --seeds
    shared out in order, len(seeds) / (C x R) keyframes per cell, and the whole frame through the preflight ->
    (its Geometry, each cell's resolved walk settings)."""
    from dataclasses import replace

    from pipeline.latents import parse_seeds

    s = settings
    s.validate()
    if s.seeds is None:
        raise UserError("a --grid walk needs --seeds: each cell walks through its share of them, e.g. "
                        "--grid 4x2 --seeds 0-31 (4 keyframes per cell)")
    seeds = parse_seeds(s.seeds)
    columns, rows = parse_layout(grid, 1)
    cells = columns * rows
    per_cell = len(seeds) // cells
    if len(seeds) % cells or per_cell < 2:
        raise UserError(f"--grid {grid} has {cells} cells, so --seeds needs a multiple of {cells} seeds, at least "
                        f"{2 * cells} (2 keyframes per cell); got {len(seeds)}")
    cell_settings = [replace(s, seeds=",".join(map(str, seeds[i * per_cell:(i + 1) * per_cell]))).resolved()
                     for i in range(cells)]
    cw, ch = s.canvas()
    geo = Geometry(columns, rows, cw, 0, ch)
    preflight(geo.width, geo.height, cell_settings[0].frames, fmt, panels=cells,
              what=f"the frame of a --grid {grid} of --size {s.size}")
    return geo, cell_settings
