"""The loss zoo: one module per family, every loss a small registered dataclass.

``make(name, **hyperparameters)`` builds one by name, ``names()`` lists them, ``REGISTRY``
maps names to classes. See ``base.py`` for the calling convention.
"""
from .adaptive import DADPO, MADPO, BetaDPO, with_score_gap
from .anchor import BCO, DPOP, KTO, NCA, RPO, SPO, APODown, APOZero, CalDPO, FlexDPO, MinorDPO
from .base import REGISTRY, Loss, MarginLoss, fields, make, names, register
from .bregman import BPO, SBA
from .dpo import DPO, IPO, Hinge
from .fdiv import EXO, FDPO, FPO
from .length import ASFT, CPO, ORPO, AlphaDPO, AlphaPO, LengthRegularizedDPO, SigmoidNorm, SimPO
from .listwise import (
                       IRPO,
                       TPO,
                       AnchoredDPO,
                       CurryDPO,
                       LiPO,
                       ListLoss,
                       PlackettLuce,
                       RankDPO,
                       list_objective,
                       solve_lists,
)
from .margin_shapes import DiscoPOP, TanPrincipled
from .noise import CDPO, RDPO
from .selfplay import (
                       DDO,
                       SPPO,
                       DisCO,
                       ddo_formula,
                       ddo_matching_alpha,
                       ddo_pairs,
                       hedge_step,
                       win_probability,
                       with_win_probs,
)
from .token import D3PO, LDDPO, AutoregressiveDPO, TokenDPO

__all__ = ["REGISTRY", "Loss", "MarginLoss", "fields", "make", "names", "register",
           "DPO", "IPO", "Hinge", "CDPO", "RDPO",
           "SimPO", "SigmoidNorm", "LengthRegularizedDPO", "ORPO", "CPO", "AlphaPO", "AlphaDPO", "ASFT",
           "DiscoPOP", "TanPrincipled",
           "BPO", "SBA", "FDPO", "FPO", "EXO",
           "KTO", "APOZero", "APODown", "NCA", "BCO", "CalDPO", "DPOP", "MinorDPO", "RPO", "SPO", "FlexDPO",
           "BetaDPO", "MADPO", "DADPO", "with_score_gap",
           "SPPO", "DDO", "DisCO", "ddo_pairs", "ddo_formula", "ddo_matching_alpha", "hedge_step",
           "win_probability", "with_win_probs",
           "ListLoss", "PlackettLuce", "LiPO", "RankDPO", "TPO", "IRPO", "AnchoredDPO", "CurryDPO", "list_objective",
           "solve_lists", "LDDPO", "AutoregressiveDPO", "TokenDPO", "D3PO"]
