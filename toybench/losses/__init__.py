"""The loss zoo: one module per family, every loss a small registered dataclass.

``make(name, **hyperparameters)`` builds one by name, ``names()`` lists them, ``REGISTRY``
maps names to classes. See ``base.py`` for the calling convention.
"""
from .base import REGISTRY, Loss, MarginLoss, fields, make, names, register
from .dpo import DPO, IPO, Hinge
from .noise import CDPO, RDPO

__all__ = ["REGISTRY", "Loss", "MarginLoss", "fields", "make", "names", "register",
           "DPO", "IPO", "Hinge", "CDPO", "RDPO"]
