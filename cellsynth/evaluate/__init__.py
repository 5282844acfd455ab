"""Image realism metrics, the two-sample (C2ST) test, segmentation metrics, the baseline and Syn2Real.

The public names are re-exported here and imported on first use (``lazy_loader``), as
``skimage.metrics`` does.

Examples
--------
>>> import numpy as np
>>> from cellsynth.evaluate import c2st, matching, paired_metrics, syn2real
>>> labels = np.zeros((4, 16, 16), np.uint16); labels[1:3, 2:8, 2:8], labels[1:3, 9:15, 9:15] = 1, 2
>>> matching(labels, labels, thresholds=(0.5,))[0]["average_precision"]
1.0
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "baseline": ["baseline"],
    "c2st": ["TwoSampleTest", "c2st", "repeated_c2st"],
    "images": ["evaluate_image_files", "evaluate_images"],
    "metrics": ["normalize", "nrmse", "paired_metrics", "psnr", "ssim", "zncc"],
    "realism": ["compare", "evaluate_realism", "image_statistics", "radial_spectrum"],
    "segmentation": ["matching", "matching_summary", "pooled_scores", "score_at"],
    "seams": ["seam_score"],
    "segmenter": ["Segmenter", "train_segmenter"],
    "settings": ["SegmenterSettings"],
    "syn2real": ["syn2real"],
})
