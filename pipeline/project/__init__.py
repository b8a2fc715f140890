"""Your own digits: pictures read as MNIST digits (images) and projected into a checkpoint's latent space (fit)."""
from pipeline.project.fit import Projection, load_feature_cnn, project_images
from pipeline.project.images import DigitImage, read_digit_image

__all__ = ["DigitImage", "Projection", "load_feature_cnn", "project_images", "read_digit_image"]
