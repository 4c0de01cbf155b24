"""open_clip's text tower run on token tensors cut to the batch's longest text.

open_clip tokenizers pad every text to the model's full context (77 tokens for ViT-B-32), and
``encode_text`` adds the full positional table, so it cannot take a shorter tensor. Under the
causal mask position ``i`` attends only to positions ``<= i``; the pooled end-of-text token
therefore never sees the padding after it, and cutting that padding changes no pooled vector.
:class:`TrimmedTextTower` runs the model's own modules on the cut tensor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Pooling that reads one position at or before the end-of-text token; "last" reads the final
# padding position and "none" returns every position, so neither can be trimmed.
_TRIMMABLE_POOLING = frozenset({"argmax", "eos", "first"})


class TrimmedTextTower:
    """The causal text forward of an open_clip ``CLIP`` or ``CustomTextCLIP`` on trimmed tokens."""

    def __init__(self, tower: nn.Module, pool_type: str, eos_id: int | None) -> None:
        # owns token_embedding, positional_embedding, transformer, attn_mask, ln_final, ...
        self._tower: Any = tower
        self._pool_type = pool_type
        self._eos_id = -1 if eos_id is None else eos_id  # read only by "eos" pooling, which has one

    @classmethod
    def of(cls, model: nn.Module) -> TrimmedTextTower | None:
        """The trimmed tower of ``model``, or ``None`` where trimming would not be exact."""
        text = getattr(model, "text", None)
        if text is not None:  # CustomTextCLIP: a TextTransformer (or an HF tower, not ours)
            tower: nn.Module = text
            pool_type = getattr(text, "pool_type", None)
            eos_id = getattr(text, "eos_id", None)
            if getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
                return None
        else:
            tower = model
            pool_type = getattr(model, "text_pool_type", None)
            eos_id = getattr(model, "text_eos_id", None)
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
        if not all(hasattr(tower, name) for name in needed):
            return None
        if getattr(tower, "attn_mask", None) is None or pool_type not in _TRIMMABLE_POOLING:
            return None  # bidirectional attention sees the padding
        if pool_type == "eos" and eos_id is None:
            return None
        return cls(tower, pool_type, eos_id)

    def pool_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per row, the position whose output becomes the text vector (open_clip's rule)."""
        if self._pool_type == "argmax":  # the end-of-text token has the highest id
            return tokens.argmax(dim=-1)
        if self._pool_type == "eos":
            return tokens.eq(self._eos_id).int().argmax(dim=-1)
        return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)

    def lengths(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens each row needs: everything up to and including its pooled position."""
        return self.pool_index(tokens) + 1

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        tower = self._tower
        index = self.pool_index(tokens)
        length = int(index.max()) + 1
        tokens = tokens[:, :length]
        cast_dtype = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(tokens).to(cast_dtype)
        x = x + tower.positional_embedding[:length].to(cast_dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask[:length, :length])
        x = tower.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), index]
        projection = tower.text_projection
        if projection is None:
            return pooled
        if isinstance(projection, nn.Linear):
            return projection(pooled)
        return pooled @ projection
