"""The optional slur filter (Owncast 0.2's `chat_slur_filter_enabled`, off by default).

Owncast checks every raw inbound frame with TwiN/go-away; we do the same kind of check with our own
lists: the text is lower-cased, common look-alike characters are mapped back to letters
(`1`→i, `3`→e, `$`→s, ...), every word loses what is not a letter (`sh.it`), runs of single letters
are joined (`F   u   C  k`), and each word is searched for a listed word. Words are never joined
otherwise, so `this picture` or `peacock suckers` stay clean; words that merely contain a listed
word (`Scunthorpe`, `spicy`) are removed before the search. The lists are ours and shorter
than go-away's: the filter catches the common cases, not everything.
"""

from __future__ import annotations

import re

_LOOKALIKES = str.maketrans("01!34@5$78|+", "oiieaasstblt")
_NOT_LETTERS = re.compile(r"[^a-z]+")
_SEPARATORS = re.compile(r'[\s{}\[\]":,]+')  # whitespace and JSON punctuation (the raw frame is checked)

# Checked as substrings of the squeezed text.
_PROFANE = (
    "fuck", "shit", "cunt", "bitch", "asshole", "bastard", "dickhead", "motherfuck", "wanker",
    "slut", "whore", "nigger", "nigga", "faggot", "retard", "tranny", "kike", "spic", "chink",
    "twat", "cocksucker", "pussy",
)  # fmt: skip
# Innocent words that contain a listed word; removed (as whole words, squeezed) before the search.
_INNOCENT = (
    "scunthorpe", "shitake", "shiitake", "spice", "spicy", "spicier", "hispanic", "chinking", "pussycat",
    "retardant", "retardation", "assholes",
)  # fmt: skip
_INNOCENT_WORDS = re.compile(r"\b(" + "|".join(_INNOCENT[:-1]) + r")\w*", re.IGNORECASE)


def _words(text: str) -> list[str]:
    lowered = _INNOCENT_WORDS.sub(" ", text.lower().translate(_LOOKALIKES))
    words: list[str] = []
    single_run = False
    for raw in _SEPARATORS.split(lowered):
        word = _NOT_LETTERS.sub("", raw)
        if not word:
            continue
        if len(word) == 1 and single_run:
            words[-1] += word
        else:
            words.append(word)
        single_run = len(word) == 1
    return words


def is_profane(text: str) -> bool:
    return any(listed in word for word in _words(text) for listed in _PROFANE)
