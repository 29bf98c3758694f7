"""Text plumbing for the built-in planner: protect literal values, split clauses, fix typos.

Literal values (SSH keys, URLs, quoted strings, absolute paths) are swapped for placeholders
like "§3§" before anything else, so splitting on "and"/"," or lowercasing never mangles them.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

SSH_KEY_RE = re.compile(
    r"(?:ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|"
    r"sk-ecdsa-sha2-nistp256@openssh\.com)\s+[A-Za-z0-9+/]+={0,3}(?:\s+[^\s,;'\"]*@[^\s,;'\"]*[^\s,;.'\"])?")
URL_RE = re.compile(r"https?://[^\s'\"<>`]+[^\s'\"<>`.,;:!?)]")
QUOTED_RE = re.compile(
    r"`([^`]*)`|\"([^\"]*)\"|“([^”]*)”|‘([^’]*)’|(?:(?<=^)|(?<=[\s:=(,]))'([^']*)'(?=$|[\s.,;:!?)])")
PATH_RE = re.compile(r"(?<![\w/.~§-])(/(?:[\w.@+-]+/)*[\w.@+-]+)(?![\w/])")
PLACEHOLDER_RE = re.compile(r"§(\d+)§")


@dataclass
class Span:
    kind: str   # key | url | quote | command | path
    value: str


@dataclass
class Protected:
    text: str                       # the message with placeholders, original case
    spans: list[Span] = field(default_factory=list)

    def value(self, placeholder: str) -> Span | None:
        m = PLACEHOLDER_RE.fullmatch(placeholder.strip())
        return self.spans[int(m.group(1))] if m else None


def protect(message: str) -> Protected:
    p = Protected(message.replace("§", " "))

    def sub(regex: re.Pattern, kind_of) -> None:
        def repl(m: re.Match) -> str:
            kind, value = kind_of(m)
            p.spans.append(Span(kind, value))
            return f"§{len(p.spans) - 1}§"
        p.text = regex.sub(repl, p.text)

    sub(SSH_KEY_RE, lambda m: ("key", " ".join(m.group(0).split())))
    sub(URL_RE, lambda m: ("url", m.group(0)))
    sub(QUOTED_RE, lambda m: ("command" if m.group(1) is not None else "quote",
                              next(g for g in m.groups() if g is not None)))
    sub(PATH_RE, lambda m: ("path", m.group(1)))
    return p


def lower_keep_length(text: str) -> str:
    """Lowercase without changing offsets (a few characters grow when lowercased)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


_ACTION = (r"(?:please\s+|also\s+|then\s+|now\s+)*(?:add|install|include|put|open|close|block|allow|deny|expose|"
           r"remove|drop|delete|uninstall|purge|get\s+rid|set|make|change|switch|use|create|enable|disable|give|"
           r"configure|name|call|rename|replace|swap|check|verify|ensure|test|turn|start|stop|write|run|"
           r"i\s+want|i'd\s+like|i\s+would\s+like|i\s+need|we\s+need|let's|lets|what|which|show|list|tell|"
           r"how\s+many|is\s+there|are\s+there|upgrade|downgrade|move|go\s+with|build\s+it|output|produce|"
           r"no\s+longer|no\s+(?=root|password|ssh)|don't|do\s+not)\b")
_CLAUSE_SPLIT = re.compile(
    rf"\s*,\s*(?:and\s+|then\s+|but\s+)?(?={_ACTION})|\s+(?:and|&)\s+(?:then\s+|also\s+)?(?={_ACTION})"
    rf"|\s+then\s+|\s*,?\s+but\s+|\s+(?=without\s(?!(?:a\s+|any\s+|entering\s+a\s+)?password))|\s+as\s+well\s+as\s+(?={_ACTION})", re.I)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+|(?<=[!?;])(?=\S)")


def split_clauses(text: str) -> list[tuple[str, bool]]:
    """-> [(clause, ended_with_question_mark)]"""
    out = []
    for sentence in _SENTENCE_SPLIT.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        parts = [c for c in _CLAUSE_SPLIT.split(sentence) if c and c.strip()]
        for i, part in enumerate(parts):
            clause = part.strip().strip(",")
            asked = clause.endswith("?") or (i == len(parts) - 1 and sentence.endswith("?"))
            clause = clause.rstrip(".!?;: ").strip()
            if clause:
                out.append((clause, asked))
    return out


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


TWO_EDIT_WORDS = {"trixie", "debian", "docker", "python", "apache", "nodejs", "mariadb"}


def closest(word: str, candidates: list[str]) -> str | None:
    """The one known word `word` is most plausibly a typo of, or None.

    Short words only count swapped letters ("gti" -> "git"); longer ones allow one edit, or two
    when the first letter agrees ("trixy" -> "trixie")."""
    best: list[tuple[int, float, str]] = []
    for cand in candidates:
        if abs(len(cand) - len(word)) > 2 or cand == word:
            continue
        dist = edit_distance(word, cand)
        if len(word) <= 3:
            ok = dist == 1 and len(cand) == len(word) and sorted(cand) == sorted(word)
        elif dist == 1:
            ok = True
        else:  # two edits only towards long, distinctive words ("postgers", "bokwrom", "trixy")
            ok = (dist == 2 and len(word) >= 5 and word[0] == cand[0] and (len(cand) >= 8 or cand in TWO_EDIT_WORDS)
                  and difflib.SequenceMatcher(None, word, cand).ratio() >= 0.7)
        if ok:
            best.append((dist, -difflib.SequenceMatcher(None, word, cand).ratio(), cand))
    if not best:
        return None
    best.sort()
    if len(best) > 1 and best[0][:2] == best[1][:2]:
        return None  # two equally good readings: do not guess
    return best[0][2]
