"""Reference optimizers composed from real packages, for cases no single package covers."""

from __future__ import annotations

import torch


class MuonWithAdamW:
    """torch.optim.Muon on the 2-D tensors, torch.optim.AdamW (the ``adamw_*`` settings) on the others: the
    reference for adamkit.Muon, which routes by shape inside one optimizer."""

    def __init__(self, params, adamw_lr=1e-3, adamw_betas=(0.9, 0.999), adamw_eps=1e-8, adamw_weight_decay=0.01,
                 **muon):  # fmt: skip
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        matrices, others = [], []
        for group in groups:
            extra = {k: v for k, v in group.items() if k != "params"}
            matrices.append({**extra, "params": [p for p in group["params"] if p.ndim == 2]})
            others.append({"params": [p for p in group["params"] if p.ndim != 2]})
        matrices, others = [g for g in matrices if g["params"]], [g for g in others if g["params"]]
        self.parts = []
        if matrices:
            self.parts.append(torch.optim.Muon(matrices, **muon))
        if others:
            adamw = dict(lr=adamw_lr, betas=adamw_betas, eps=adamw_eps, weight_decay=adamw_weight_decay)
            self.parts.append(torch.optim.AdamW(others, **adamw))
        self.state = {k: v for part in self.parts for k, v in part.state.items()}

    def step(self):
        for part in self.parts:
            part.step()
        self.state = {k: v for part in self.parts for k, v in part.state.items()}

    def zero_grad(self):
        for part in self.parts:
            part.zero_grad()
