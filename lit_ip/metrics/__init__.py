"""Image metrics (PSNR, SSIM, LPIPS, LPIPS-VGG, FID, KID) and posterior-calibration metrics."""
from .evaluation import Evaluation
from .image import ImageMetrics
from .inception import InceptionV3Features
from .kid import KID
from .lpips import LPIPS

__all__ = ["ImageMetrics", "Evaluation", "LPIPS", "KID", "InceptionV3Features"]
