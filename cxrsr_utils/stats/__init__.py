"""Scores and statistics: image-quality metrics against HR (PSNR, SSIM, MSE) and the statistical
tests, intervals and corrections every comparison uses.
"""
