"""Training as the article describes: `train(TrainConfig(...))` writes checkpoints and metrics."""
from pipeline.train.config import PrevSchedule, ResnetSchedule, TrainConfig
from pipeline.train.loop import TrainResult, load_train_config, train

__all__ = ["train", "TrainConfig", "TrainResult", "ResnetSchedule", "PrevSchedule", "load_train_config"]
