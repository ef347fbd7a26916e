"""Edit directions in one place: finding them (SeFa, PCA, InterFaceGAN), their files, applying and measuring them.

A thin gathering of :mod:`wplus.edits.discovery`, :mod:`wplus.edits.discovery_io`,
:mod:`wplus.edits.directions` and :mod:`wplus.edits.measure`, so that a script needs one import::

    from wplus import directions, load_generator
    G = load_generator("cartoon-faces-64")
    found = directions.sefa(G, layers=range(0, 4))
    directions.save_sefa("sefa.npz", found)
"""

from wplus.edits.directions import (
    Direction,
    apply_direction,
    direction_from_pairs,
    load_direction,
    move_to_coordinate,
    save_direction,
)
from wplus.edits.discovery import (
    Boundary,
    PCAResult,
    SampledCodes,
    SefaResult,
    StyleAffine,
    fit_boundary,
    pca,
    project_out,
    sample_codes,
    sefa,
    style_affines,
)
from wplus.edits.discovery_io import (
    load_samples,
    load_scores,
    save_boundary,
    save_ganspace,
    save_interfacegan,
    save_pca,
    save_rosinality_factor,
    save_samples,
    save_sefa,
)
from wplus.edits.measure import AttributeResponse, attribute_response, attribute_responses, face_part_mask

__all__ = [
    "sefa",
    "SefaResult",
    "StyleAffine",
    "style_affines",
    "pca",
    "PCAResult",
    "sample_codes",
    "SampledCodes",
    "fit_boundary",
    "Boundary",
    "project_out",
    "save_sefa",
    "save_rosinality_factor",
    "save_pca",
    "save_ganspace",
    "save_samples",
    "load_samples",
    "load_scores",
    "save_boundary",
    "save_interfacegan",
    "Direction",
    "load_direction",
    "save_direction",
    "apply_direction",
    "move_to_coordinate",
    "direction_from_pairs",
    "attribute_response",
    "attribute_responses",
    "AttributeResponse",
    "face_part_mask",
]
