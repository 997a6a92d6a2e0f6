"""Near misses of a name among the names a part of convscope knows, for "did you mean" hints."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def folded(text: str) -> str:
    """``text`` as near misses compare it: lower case, ``-`` read as ``_``."""
    return text.lower().replace("-", "_")


def near_misses(
    word: object, choices: Iterable[str], *, n: int = 3, cutoff: float = 0.6, key: Callable[[str], str] = folded
) -> list[str]:
    """The ``choices`` that ``word`` is a near miss of (a typo, another case ...), best first: at
    most ``n``, compared by ``key`` (choices of one key: the first), none for a word that is no str.

    Example:
        >>> near_misses("Evrey", ["every", "every_n", "layers"])
        ['every', 'every_n']
        >>> near_misses(5, ["every"])
        []
    """
    import difflib  # (only where a name was not known)

    if not isinstance(word, str):
        return []
    keyed: dict[str, str] = {}
    for choice in choices:
        keyed.setdefault(key(choice), choice)
    return [keyed[k] for k in difflib.get_close_matches(key(word), list(keyed), n=n, cutoff=cutoff)]
