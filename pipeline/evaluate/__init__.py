"""Evaluation: the project's own digit classifier and measurements of the article's claims."""
from pipeline.digit_classifier import LoadedCNN, accuracy, classify
from pipeline.evaluate.metrics import ASSET_PATH, EvalRow, detail_fraction, evaluate_checkpoint, load_digit_cnn
from pipeline.models.digit_cnn import DigitCNN, DigitCNNConfig

__all__ = ["ASSET_PATH", "DigitCNN", "DigitCNNConfig", "EvalRow", "LoadedCNN", "accuracy", "classify",
           "detail_fraction", "evaluate_checkpoint", "load_digit_cnn"]
