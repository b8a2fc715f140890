"""Models of the article: CPPN generators, the VAE encoder, the classifier/discriminator."""
from pipeline.models.classifier import DISCRIMINATOR, Classifier, ClassifierConfig
from pipeline.models.encoder import Encoder, EncoderConfig, reparameterize
from pipeline.models.generators import (
    GENERATOR_FAMILIES,
    PrevConfig,
    PrevGenerator,
    ResnetConfig,
    ResnetGenerator,
    build_generator,
    generator_config,
)

__all__ = [
    "DISCRIMINATOR", "Classifier", "ClassifierConfig", "Encoder", "EncoderConfig", "reparameterize",
    "GENERATOR_FAMILIES", "PrevConfig", "PrevGenerator", "ResnetConfig", "ResnetGenerator",
    "build_generator", "generator_config",
]
