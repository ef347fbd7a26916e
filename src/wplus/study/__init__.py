"""``wplus study``: Image2StyleGAN's experiments, one call each, on any generator and images.

Studies (:data:`STUDIES`): ``classes`` (Figs. 1, 10, 17, 20), ``transforms`` (Table 1), ``defects`` (Table 3),
``spaces`` (Table 2, Fig. 5), ``losses`` (Fig. 9), ``reembed`` (Fig. 11), ``noise`` (Fig. 16) and ``resolution``
(Fig. 12). Each writes ``results.csv``, ``results.md``, ``figure.png`` (matplotlib, the ``plot`` extra) and
``study.json``; every projection is a unit of work written atomically and skipped when a run is repeated.
"""

from wplus.study.core import StudyContext, StudyResult, Unit, UnitResult
from wplus.study.inputs import Item, default_items, items_from_paths
from wplus.study.runner import check_study, run_study, study_names
from wplus.study.studies import PAPER, STUDIES, STUDY_ORDER

__all__ = [
    "STUDIES",
    "STUDY_ORDER",
    "PAPER",
    "StudyContext",
    "StudyResult",
    "Unit",
    "UnitResult",
    "Item",
    "default_items",
    "items_from_paths",
    "run_study",
    "check_study",
    "study_names",
]
