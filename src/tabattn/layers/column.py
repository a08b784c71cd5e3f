"""(Being written: see issue 4.)"""

__all__ = []
