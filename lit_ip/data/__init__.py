"""Data sources of ``{"image", "key", "index"}`` items (bundled images, folders, prior samples, shards)."""
from .analytic import AnalyticPriorSamples
from .bundled import LFWFaces, NaturalCrops, SkimagePhotos
from .folder import ImageFolder

__all__ = ["AnalyticPriorSamples", "LFWFaces", "NaturalCrops", "SkimagePhotos", "ImageFolder"]
