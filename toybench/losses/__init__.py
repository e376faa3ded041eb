"""The loss zoo: one module per family, every loss a small registered dataclass.

``make(name, **hyperparameters)`` builds one by name, ``names()`` lists them, ``REGISTRY``
maps names to classes. See ``base.py`` for the calling convention.
"""
from .base import REGISTRY, Loss, MarginLoss, fields, make, names, register
from .dpo import DPO, IPO, Hinge
from .noise import CDPO, RDPO
from .length import ASFT, CPO, ORPO, AlphaDPO, AlphaPO, LengthRegularizedDPO, SigmoidNorm, SimPO
from .margin_shapes import DiscoPOP, TanPrincipled
from .bregman import BPO, SBA
from .fdiv import EXO, FDPO, FPO
from .anchor import BCO, DPOP, KTO, NCA, RPO, SPO, APODown, APOZero, CalDPO, FlexDPO, MinorDPO

__all__ = ["REGISTRY", "Loss", "MarginLoss", "fields", "make", "names", "register",
           "DPO", "IPO", "Hinge", "CDPO", "RDPO"]
__all__ += ["SimPO", "SigmoidNorm", "LengthRegularizedDPO", "ORPO", "CPO", "AlphaPO", "AlphaDPO", "ASFT",
            "DiscoPOP", "TanPrincipled"]
__all__ += ["BPO", "SBA", "FDPO", "FPO", "EXO"]
__all__ += ["KTO", "APOZero", "APODown", "NCA", "BCO", "CalDPO", "DPOP", "MinorDPO", "RPO", "SPO", "FlexDPO"]
from .adaptive import DADPO, MADPO, BetaDPO, with_score_gap
__all__ += ["BetaDPO", "MADPO", "DADPO", "with_score_gap"]
from .selfplay import DDO, SPPO, DisCO, ddo_formula, ddo_matching_alpha, ddo_pairs, hedge_step, \
    win_probability, with_win_probs
__all__ += ["SPPO", "DDO", "DisCO", "ddo_pairs", "ddo_formula", "ddo_matching_alpha", "hedge_step",
            "win_probability", "with_win_probs"]
