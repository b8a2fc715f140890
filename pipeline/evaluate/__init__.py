"""Evaluation: the project's own digit classifier and measurements of the article's claims."""
from pipeline.evaluate.digit_cnn import DigitCNN, DigitCNNConfig
from pipeline.evaluate.metrics import (ASSET_PATH, EvalRow, LoadedCNN, accuracy, classify, detail_fraction,
                                       evaluate_checkpoint, load_digit_cnn)

__all__ = ["ASSET_PATH", "DigitCNN", "DigitCNNConfig", "EvalRow", "LoadedCNN", "accuracy", "classify",
           "detail_fraction", "evaluate_checkpoint", "load_digit_cnn"]
