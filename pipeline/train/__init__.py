"""Training as the article describes: `train(TrainConfig(...))` writes checkpoints and metrics."""
from pipeline.lazy import exports
from pipeline.train.config import PrevSchedule, ResnetSchedule, TrainConfig

__all__ = ["train", "TrainConfig", "TrainResult", "ResnetSchedule", "PrevSchedule", "load_train_config"]
__getattr__ = exports(__name__, {name: "pipeline.train.loop" for name in ("train", "TrainResult", "load_train_config")})
