"""finser: speech emotion recognition with Feature Imitating Networks."""

from finser.errors import FinserError

__all__ = ["FinserError", "load_fin"]


def load_fin(path):
    """A published FIN checkpoint as a plain ``torch.nn.Module`` (frames (B, 2048) → features in their units)."""
    from finser.models.checkpoint import load_fin as _load_fin

    return _load_fin(path)
