"""replay renders the default keyframes its sidecar records (digit_bank_rows), not what choosing them again
would give now."""
import json

import numpy as np
import pytest

from pipeline.checkpoint import list_bundled, load_checkpoint
from pipeline.errors import UserError
from pipeline.jobs.render import render_walk
from pipeline.jobs.replay import replay
from pipeline.jobs.settings import WalkSettings

pytestmark = pytest.mark.skipif("e24" not in list_bundled(), reason="the bundled e24 checkpoint is not here")


def test_replay_uses_the_recorded_rows(tmp_path):
    ck = load_checkpoint("e24")
    s = WalkSettings(frames=3, size=24, keyframes=3, pace="none", fmt="png")
    info = render_walk(ck, tmp_path / "w", s)
    chosen = info["digit_bank_rows"]
    labels = ck.digit_labels.numpy()
    # rows the choice would not give: a 1, a 7 and a 4 that are not the chosen ones
    other = [int(np.nonzero((labels == d) & ~np.isin(np.arange(labels.size), chosen))[0][0]) for d in (1, 7, 4)]
    sidecar = json.loads((tmp_path / "w.json").read_text())
    sidecar["digit_bank_rows"] = other
    (tmp_path / "w.json").write_text(json.dumps(sidecar))
    again = replay(tmp_path / "w.json", tmp_path / "r")
    assert again["digit_bank_rows"] == other and again["keyframe_digits"] == [1, 7, 4]
    assert np.array_equal(np.asarray(again["keyframes"]), ck.digit_latents.numpy()[other])
    # rows out of the bank are the sidecar's damage, in one line
    sidecar["digit_bank_rows"] = [0, 1, 10 ** 6]
    (tmp_path / "w.json").write_text(json.dumps(sidecar))
    with pytest.raises(UserError, match="digit_bank_rows: expected a list of 3 rows"):
        replay(tmp_path / "w.json", tmp_path / "r2")
