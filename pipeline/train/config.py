"""Training settings: TrainConfig and the article's per-family schedule constants."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from pipeline.errors import UserError

FAMILIES = ("resnet", "prev")
DATASETS = ("mnist", "fashion-mnist")
# "float32": everything in float32. "bf16": the classifier/discriminator's convolutions and linear head
# run under bfloat16 autocast (float32 weights, accumulation, batch norm and losses), about 2-3x faster
# on CPUs with native bf16 (AVX512-BF16, AMX) and on GPUs; checked against float32 in the tests.
PRECISIONS = ("float32", "bf16")


@dataclass(frozen=True)
class ResnetSchedule:
    """Part two (ARTICLE.md, model "resnet"): 11-class classifier, KL-only VAE."""
    lr_g: float = 0.001              # Adam lr of the generator+encoder objective G_loss + kl_weight*KL
    lr_d: float = 0.001              # Adam lr of the classifier (both D_loss and D_real steps)
    beta1: float = 0.75              # Adam beta1 (all optimisers)
    beta2: float = 0.999             # Adam beta2 (TensorFlow's default, as the original used)
    grad_clip: float = 5.0           # clip each step's gradients to this global norm (0: off)
    kl_weight: float = 10.0          # generator+encoder minimise G_loss + kl_weight * KL
    keep_prob: float = 0.65          # encoder dropout keep probability while training
    g_steps: int = 16                # at most this many G+E steps per batch...
    g_stop_acc: float = 0.98         # ...stopping once generator accuracy exceeds this
    d_fake_below: float = 0.7        # train on D_loss if fake-detection accuracy is below this...
    d_gen_above: float = 0.6         # ...and generator accuracy is above this
    d_steps: int = 8                 # at most this many D_loss steps...
    d_stop_fake_acc: float = 0.75    # ...stopping once fake-detection accuracy exceeds this
    d_real_below: float = 0.6        # otherwise train on D_real alone if real accuracy is below this
    d_real_steps: int = 8            # at most this many D_real steps...
    d_real_stop_acc: float = 0.7     # ...stopping once real accuracy exceeds this


@dataclass(frozen=True)
class PrevSchedule:
    """Part one (ARTICLE.md, model "prev"): binary discriminator, full VAE loss."""
    lr_vae: float = 0.001            # Adam lr of the VAE-only steps (encoder+generator)
    lr_g: float = 0.005              # Adam lr of the G_loss + VAE_loss steps (encoder+generator)
    lr_d: float = 0.001              # Adam lr of the discriminator
    beta1: float = 0.65              # Adam beta1 (all optimisers)
    beta2: float = 0.999             # Adam beta2 (TensorFlow's default)
    grad_clip: float = 0.0           # part one's code clipped nothing (0: off); the norm is still checked
    keep_prob: float = 1.0           # encoder without dropout in part one
    vae_steps: int = 4               # VAE-only steps per batch
    g_steps: int = 4                 # at most this many G+VAE steps...
    g_stop_loss: float = 0.6         # ...stopping once G_loss is below this
    d_above: float = 0.6             # one D step if D_loss is above this...
    d_g_below: float = 0.75          # ...and G_loss is below this
    d_steps: int = 1                 # D steps when the condition holds


SCHEDULES = {"resnet": ResnetSchedule, "prev": PrevSchedule}
DEFAULT_BATCH = {"resnet": 2000, "prev": 500}    # the released part-two run (config.pkl) / part one's script
DEFAULT_SPLIT = {"resnet": "all", "prev": "train"}  # part two trained on all 70,000 digits, part one on the 60,000
DEFAULT_WIDTH = {"resnet": 6, "prev": 128}
DEFAULT_DEPTH = {"resnet": 24, "prev": 3}        # residual blocks / tanh layers

# Settings that may change when resuming: how long to train and what to keep,
# and where the (hash-checked) data lives.
RESUMABLE_CHANGES = ("epochs", "save_at", "out_dir", "data_dir", "precision")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; `resolved()` fills the family defaults."""
    model: str = "resnet"                  # generator family: "resnet" (part two) or "prev" (part one)
    width: int | None = None               # generator width; None -> 6 (resnet) / 128 (prev); the article tries 4
    depth: int | None = None               # resnet residual blocks / prev tanh layers; None -> 24 / 3
    epochs: int = 24                       # passes over the data
    save_at: tuple[int, ...] = ()          # also write e{epoch}.pt after these epochs (the last is always written)
    out_dir: str = "runs/resnet"           # run directory: e*.pt, state.pt, metrics.jsonl, config.json
    data_dir: str | None = None            # folder with the IDX files; None -> cache / download
    dataset: str = "mnist"                 # "mnist" or "fashion-mnist"
    split: str | None = None               # "all", "train" or "test"; None -> "all" (resnet) / "train" (prev)
    batch_size: int | None = None          # None -> 2000 (resnet, the released run) / 500 (prev)
    limit: int | None = None               # train on the first N images only (quick runs)
    seed: int = 0                          # seeds weights, data order, crops, z noise and dropout
    precision: str = "float32"             # "float32" or "bf16" (the classifier under bf16 autocast)
    schedule: ResnetSchedule | PrevSchedule | None = None  # None -> the article's constants for `model`

    def resolved(self) -> "TrainConfig":
        """Check the settings and fill every None default; raises UserError naming the bad field."""
        if self.model not in FAMILIES:
            raise UserError(f"unknown model {self.model!r}; choose one of: {', '.join(FAMILIES)}", key="model")
        if self.dataset not in DATASETS:
            raise UserError(f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}", key="dataset")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}", key="precision")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise UserError(f"epochs must be a whole number >= 1, got {self.epochs!r}", key="epochs")
        save_at = tuple(sorted(set(int(e) for e in self.save_at)))
        bad = [e for e in save_at if not 1 <= e <= self.epochs]
        if bad:
            raise UserError(f"save_at epochs must be within 1..{self.epochs} (the number of epochs), got {bad}", key="save_at")
        for name in ("width", "depth", "batch_size", "limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UserError(f"{name} must be a whole number >= 1, got {value!r}", key=name)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed must be a whole number >= 0, got {self.seed!r}", key="seed")
        sched_cls = SCHEDULES[self.model]
        schedule = self.schedule if self.schedule is not None else sched_cls()
        if not isinstance(schedule, sched_cls):
            raise UserError(f"schedule {type(schedule).__name__} does not belong to model {self.model!r}", key="schedule")
        return replace(
            self,
            width=self.width or DEFAULT_WIDTH[self.model],
            depth=self.depth or DEFAULT_DEPTH[self.model],
            batch_size=self.batch_size or DEFAULT_BATCH[self.model],
            split=self.split or DEFAULT_SPLIT[self.model],
            save_at=save_at,
            out_dir=str(self.out_dir),
            data_dir=None if self.data_dir is None else str(self.data_dir),
            schedule=schedule,
        )

    def to_dict(self) -> dict:
        """Plain values (JSON- and weights_only-safe)."""
        d = asdict(self)
        d["save_at"] = list(self.save_at)
        return d

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown training settings {', '.join(unknown)}; the run may come from another version")
        if values.get("schedule") is not None:
            sched_cls = SCHEDULES.get(values.get("model", "resnet"), ResnetSchedule)
            values["schedule"] = sched_cls(**values["schedule"])
        if "save_at" in values:
            values["save_at"] = tuple(values["save_at"])
        return cls(**values)

    def command_line(self) -> list[str]:
        """The `cppn-video train` arguments that reproduce this run (schedule constants are not flags)."""
        args = ["cppn-video", "train", "--model", self.model]
        if self.width is not None:
            args += ["--width", str(self.width)]
        args += ["--epochs", str(self.epochs)]
        if self.save_at:
            args += ["--save-at", ",".join(str(e) for e in self.save_at)]
        args += ["--out", str(self.out_dir)]
        if self.data_dir is not None:
            args += ["--data", str(self.data_dir)]
        args += ["--dataset", self.dataset]
        if self.batch_size is not None:
            args += ["--batch-size", str(self.batch_size)]
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        args += ["--seed", str(self.seed)]
        if self.precision != "float32":
            args += ["--precision", self.precision]
        return args


def mismatches(saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    """Resolved settings that differ between a saved run and a resume request (beyond RESUMABLE_CHANGES)."""
    a, b = saved.to_dict(), wanted.to_dict()
    return [f"{k}: run has {a[k]!r}, asked {b[k]!r}" for k in a if k not in RESUMABLE_CHANGES and a[k] != b[k]]
