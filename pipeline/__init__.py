"""cppn-video: train CPPN generators on MNIST and render them as high-resolution videos."""
__version__ = "0.1.0"
