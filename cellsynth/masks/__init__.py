"""Mask simulators and label-derived maps: numpy, scipy, scikit-image, pyshtools and trimesh only (never torch).

The public functions are re-exported here and imported on first use (``lazy_loader``, as
scikit-image does), so ``import cellsynth.masks`` is cheap.

Examples
--------
>>> from cellsynth.masks import fit_ssm, membrane_mask, simulate_masks, voronoi_cells
>>> sample = simulate_masks((16, 64, 64), (0.5, 0.5, 0.5), {"nuclei": {"radius_um": 3.0}}, rng=0)
>>> sample.shape, int(sample.labels.max()) > 0
((16, 64, 64), True)
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "derived": ["centreness", "centroid_table", "instance_boundaries", "semantic_from_instances", "specimen_mask",
                "write_cell_meshes", "write_centroids_csv"],
    "membranes": ["membrane_mask", "seed_weights", "voronoi_cells"],
    "nuclei": ["simulate_nuclei"],
    "organism": ["ellipsoid_organism", "mask_organism", "sh_organism", "ssm_organism"],
    "placement": ["CrowdedWarning", "layered_positions", "poisson_disk_positions", "positions_from_detections"],
    "segment": ["classical_segmentation", "distance_watershed", "seeded_watershed"],
    "simulate": ["masks_from_labels", "simulate_masks"],
    "ssm": ["StatisticalShapeModel", "fit_ssm"],
})
