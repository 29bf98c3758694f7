"""Single settings: release, format, hostname, timezone, locale, keyboard and the recipe name."""
from __future__ import annotations

import re

from . import vocab
from .wording import human_list
from .reading import B, E, NOT_NAMES, Clause, Ctx


# settings

_RELEASE_PATTERN = (B + r"(?:(?:debian\s*-?\s*(?P<num>1[0-4])(?:\.\d+)?)|(?P<word>trixie|bookworm|oldstable|"
                    r"debian\s+stable|stable\s+debian|latest\s+debian|newest\s+debian|current\s+debian)|"
                    r"(?P<bad>bullseye|buster|stretch|sid|forky|ubuntu|fedora|centos|alpine|arch\s+linux|rhel|rocky))" + E)


def handle_release(ctx: Ctx, c: Clause) -> None:
    matches = c.take(_RELEASE_PATTERN)
    if not matches:
        return
    chosen = None
    for m in matches:
        if m.group("bad"):
            name = m.group("bad")
            what = vocab.UNSUPPORTED_RELEASES.get(name, name.title())
            ctx.refused.append(f"Kiln builds Debian trixie (13) or bookworm (12) only, not {what}.")
            continue
        if m.group("num"):
            release = {"13": "trixie", "12": "bookworm"}.get(m.group("num"))
            if release is None:
                ctx.refused.append(f"Kiln builds Debian 13 (trixie) or 12 (bookworm) only, not Debian {m.group('num')}.")
                continue
        else:
            release = vocab.RELEASE_WORDS.get(re.sub(r"\s+", " ", m.group("word")), m.group("word"))
        before = c.s[max(0, m.start() - 4):m.start()]
        if chosen is None or "to " in before or not chosen[1]:
            chosen = (release, "to " in before)
    if chosen:
        ctx.apply({"op": "set", "field": "release", "value": chosen[0]})


def handle_format(ctx: Ctx, c: Clause) -> None:
    for pattern, fmt in vocab.FORMAT_PATTERNS:
        if c.take(pattern):
            ctx.apply({"op": "set", "field": "format", "value": fmt})
            c.take(r"\b(?:image|disk|format|output|file|archive)\b")
            return


def handle_hostname(ctx: Ctx, c: Clause) -> None:
    for pattern in (
        r"\bhost\s*-?name\s*(?:to\s+be\b|to|=|:|is|as|should\s+be|will\s+be|of|set\s+to)?\s*(?:be\s+)?(?:['\"]?)([a-z0-9][a-z0-9._-]*)",
        r"\b(?:call|name)\s+(?:it|the\s+(?:server|machine|box|host|system|vm|image))\s+([a-z0-9][a-z0-9._-]*)",
        r"\b(?:server|machine|box|host|vm|it)\s+(?:to\s+be\s+|should\s+be\s+|is\s+|will\s+be\s+)?(?:called|named)\s+([a-z0-9][a-z0-9.-]*)",
    ):
        m = c.search(pattern)
        if m and m.group(1) not in NOT_NAMES:
            c.consume(m.start(), m.end())
            ctx.apply({"op": "set", "field": "hostname", "value": m.group(1).strip(".-")})
            return
        if m:
            ctx.refused.append("Which hostname? For example: \"set the hostname to web01\".")
            c.consume(m.start(), m.end())
            return


# A zone named without the word "timezone": "use Berlin time", "Europe/Paris".
_ZONE_MENTIONS = (r"\b(?:in|to|on|use)\s+([a-z][a-z_/]+(?:\s+[a-z][a-z_]+)?)\s+time\b",
                  r"(?<![\w/])((?:africa|america|antarctica|asia|atlantic|australia|europe|indian|pacific|etc)"
                  r"/[a-z_+-]+(?:/[a-z_+-]+)?)")


def handle_timezone(ctx: Ctx, c: Clause) -> None:
    m = c.search(r"\b(?:time\s*-?zone|tz|clock)\s*(?:to\s+be\b|to|=|:|is|as|should\s+be|of|in)?\s*(?:be\s+)?(.+)$")
    if m:
        words = m.group(1).split()
        for n in (3, 2, 1):
            if len(words) < n:
                continue
            candidate = " ".join(words[:n])
            zone, options = vocab.resolve_timezone(candidate)
            if zone or options:
                start = m.start()
                end = m.start(1) + len(" ".join(m.group(1).split()[:n])) + (len(m.group(1)) - len(m.group(1).lstrip()))
                c.consume(start, min(end, len(c.s)))
                if zone:
                    ctx.apply({"op": "set", "field": "timezone", "value": zone})
                else:
                    ctx.refused.append(f"\"{candidate}\" could be {human_list(options)}; say which.")
                return
        ctx.refused.append(f"I do not know the timezone \"{' '.join(words[:2])}\"; use a name like Europe/Berlin "
                           "or a city like Berlin.")
        c.consume(m.start(), m.end())
        return
    for pattern in _ZONE_MENTIONS:
        m = c.search(pattern)
        zone = vocab.resolve_timezone(m.group(1))[0] if m else None
        if zone:
            c.consume(m.start(), m.end())
            ctx.apply({"op": "set", "field": "timezone", "value": zone})
            return


def handle_locale(ctx: Ctx, c: Clause) -> None:
    for pattern in (r"\blocale\s*(?:to\s+be\b|to|=|:|is|as|should\s+be)?\s*([a-z]{2,3}[_-][a-z]{2}(?:\.utf-?8)?|c\.utf-?8|[a-z]+)",
                    r"(?<![\w.])([a-z]{2,3}_[a-z]{2}(?:\.utf-?8)?)(?![\w])",
                    r"\b([a-z]+)\s+(?:locale|language\s+settings|system\s+language)\b",
                    r"\b(?:system\s+)?language\s*(?:to\s+be\b|to|=|:|is|as)?\s*([a-z]+)",
                    r"\b(?:in|to)\s+(" + "|".join(sorted(vocab.LANGUAGES, key=len, reverse=True)) + r")\s*$"):
        m = c.search(pattern)
        if not m or m.group(1) in ("us", "uk") and "locale" not in c.s:
            continue
        if m.group(1) in vocab.STOPWORDS and m.group(1) not in vocab.LANGUAGES:
            continue
        loc = vocab.normalize_locale(m.group(1))
        c.consume(m.start(), m.end())
        if loc is None:
            ctx.refused.append(f"I do not know the locale \"{m.group(1)}\"; use a name like de_DE.UTF-8 or a language like German.")
        else:
            ctx.apply({"op": "set", "field": "locale", "value": loc})
        return


def handle_keyboard(ctx: Ctx, c: Clause) -> None:
    m = c.search(r"\b([a-z]+(?:\s+[a-z]+)?)\s+(?:keyboard|keymap|key\s+map)(?:\s+layout)?\b")
    value = None
    if m:
        words = m.group(1).split()
        for n in (2, 1):
            cand = " ".join(words[-n:])
            if len(words) >= n and cand in vocab.KEYBOARDS:
                value = vocab.KEYBOARDS[cand]
                break
        if value is None and re.fullmatch(r"[a-z]{2}", words[-1]) and words[-1] not in vocab.STOPWORDS:
            value = words[-1]
    if value is None:
        m = c.search(r"\b(?:keyboard|keymap|key\s+map)(?:\s+layout)?\s*(?:to\s+be\b|to|=|:|is|as|should\s+be)?\s*"
                     r"(?:the\s+)?([a-z]+(?:-[a-z0-9_]+)?(?:\s+[a-z]+)?)")
        if m:
            words = m.group(1).split()
            for n in (2, 1):
                cand = " ".join(words[:n])
                if len(words) >= n and cand in vocab.KEYBOARDS:
                    value = vocab.KEYBOARDS[cand]
                    break
            if value is None and re.fullmatch(r"[a-z]{2,3}(?:-[a-z0-9_]+)?", words[0]) and words[0] not in vocab.STOPWORDS:
                value = words[0]
            if value is None:
                ctx.refused.append(f"I do not know the keyboard layout \"{words[0]}\"; use a code like de, fr, us or gb.")
                c.consume(m.start(), m.end())
                return
    if value:
        c.consume(m.start(), m.end())
        ctx.apply({"op": "set", "field": "keyboard", "value": value})


def handle_name(ctx: Ctx, c: Clause) -> None:
    m = c.search(r"\b(?:name|call|rename)\s+(?:the\s+)?(?:recipe|image|build|project|config)\s+(?:to\s+|as\s+)?"
                 r"['\"]?([A-Za-z0-9][\w.-]*)|\b(?:recipe|project|image)\s+name\s*(?:to|=|:|is)?\s*([A-Za-z0-9][\w.-]*)"
                 r"|^(?:set|change)\s+(?:the\s+)?name\s*(?:to|=|:|as)\s*([A-Za-z0-9][\w.-]*)|^name\s*[:=]\s*([A-Za-z0-9][\w.-]*)")
    if m:
        group = next(g for g in range(1, 5) if m.group(g))
        value = c.original(m, group)
        c.consume(m.start(), m.end())
        ctx.apply({"op": "set", "field": "name", "value": value})
