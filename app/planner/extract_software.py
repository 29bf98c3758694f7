"""Software and services: everyday names, real package names (checked in the index), removals."""
from __future__ import annotations

import re
from typing import Any

from . import catalog, vocab
from .wording import human_list
from .reading import B, E, EXPLICIT_VERB, KNOWN_WORDS, ORDINARY_WORDS, Clause, Ctx, list_items, plural_of_word
from .roles import ASKS, ROLES
from .text import closest


# services

def handle_services(ctx: Ctx, c: Clause) -> bool:
    m = c.search(r"^(?:(enable|start)|(disable|stop|mask))\s+(?:the\s+)?(.+?)(?:\s+services?)?(?:\s+(?:at|on)\s+boot)?$")
    if not m:
        return False
    names = [w for w in list_items(m.group(3)) if w not in vocab.STOPWORDS and not w.startswith("§")]
    names = [re.sub(r"\s+(?:services?|daemon)$", "", re.sub(r"^(?:the|service)\s+", "", n)).strip() for n in names]
    if m.group(2):
        services = [catalog.service_for(n) for n in names if n]
        if services:
            c.consume(m.start(), m.end())
            ctx.apply({"op": "disable_services", "services": services})
            return True
        return False
    services, software = [], []
    for n in names:
        sw = catalog.ALIASES.get(n)
        installed = sw and any(p in ctx.recipe["packages"] for slot in sw.packages for p in slot)
        if sw and not installed:
            software.append(n)  # "enable ssh" on a recipe without it means: install it
        else:
            services.append(catalog.service_for(n))
    if not services:
        return False
    c.consume(m.start(), m.end())
    ctx.apply({"op": "enable_services", "services": services})
    if software:
        handle_software(ctx, Clause("add " + " and ".join(software)), removing=False)
    return True


# software

def _alias_regex(phrase: str) -> str:
    return B + r"[\s-]+".join(map(re.escape, phrase.split())) + E


ALIAS_RES = [(p, re.compile(_alias_regex(p))) for p in catalog.ALIAS_PHRASES]
_UNAVAILABLE_RE = re.compile(B + "(" + "|".join(map(re.escape, sorted(catalog.UNAVAILABLE, key=len, reverse=True))) + ")" + E
                             + r"(?:\s+(?:node|cluster|server|instance|worker|master)s?\b)?")
_CATEGORIES = {"role:web-server": ("nginx", "apache2", "caddy", "lighttpd"),
               "ask:database": ("postgresql", "mariadb-server", "default-mysql-server", "redis-server", "valkey-server")}


def handle_software(ctx: Ctx, c: Clause, removing: bool) -> None:
    found: list[tuple[int, catalog.Software, str]] = []
    for m in re.finditer(r"(?<![\w.+-])([a-z0-9][a-z0-9+.-]*[a-z0-9+])\s*(?:=|==)\s*v?([0-9][\w.:~+-]*)", c.s):
        c.consume(m.end(1), m.end())
        if not removing:
            current = ctx.index().version(m.group(1)) if ctx.exists(m.group(1)) else None
            ctx.say(f"(Kiln installs the version Debian {ctx.recipe['release']} ships"
                    + (f", {m.group(1)} {current}" if current else "") + f"; it cannot pin {m.group(1)} to {m.group(2)}.)")
    if not removing:
        for m in _UNAVAILABLE_RE.finditer(c.s):
            ctx.refused.append(catalog.UNAVAILABLE[m.group(1)] + ".")
            c.consume(m.start(), m.end())
    for phrase, rx in ALIAS_RES:
        for m in rx.finditer(c.s):
            if c.s[m.start():m.end()].strip():
                found.append((m.start(), catalog.ALIASES[phrase], phrase))
                c.consume(m.start(), m.end())
    explicit = bool(EXPLICIT_VERB.search(c.s)) or removing
    raw: list[tuple[int, str]] = []
    for m in re.finditer(r"(?<![\w§+.'-])([a-z0-9][a-z0-9+.'-]*[a-z0-9+]|[a-z])(?![\w§+'-])", c.s):
        w = m.group(1)
        if "'" in w or w in vocab.STOPWORDS or w.isdigit() or (w in KNOWN_WORDS and not ctx.exists(w)):
            continue
        raw.append((m.start(), w))
    found.sort(key=lambda f: f[0])

    if removing:
        if not found and not raw and re.search(r"\b(?:it|that|them|those|this|these)\b", c.s):
            earlier = _recently_mentioned(ctx)
            if not earlier:
                ctx.refused.append("Remove what? Name it, for example \"remove nginx\".")
                return
            raw = [(0, p) for p in earlier]
        _remove_software(ctx, [(sw, phrase) for _, sw, phrase in found], [w for _, w in raw])
        return

    found = _drop_generic(ctx, found)
    packages: list[str] = []
    notes: list[str] = []
    index = ctx.index()
    items: list[tuple[int, Any, str]] = [(pos, sw, phrase) for pos, sw, phrase in found] + [(pos, w, w) for pos, w in raw]
    roles: list[catalog.Software] = []
    for pos, thing, said in sorted(items, key=lambda i: i[0]):
        if isinstance(thing, catalog.Software) and thing.ask:
            _ask(ctx, thing, [o for _, o, _ in found if o is not thing], [w for _, w in raw])
            continue
        if isinstance(thing, catalog.Software) and thing.role:
            roles.append(thing)
            if thing.note:
                notes.append(f"(I picked {thing.note}.)")
            continue
        if isinstance(thing, catalog.Software):
            for req in thing.requires:
                req_sw = catalog.BY_KEY[req]
                req_pkgs = catalog.resolve_packages(req_sw, index)
                if not any(p in ctx.recipe["packages"] or p in packages for p in req_pkgs):
                    packages += req_pkgs
                    notes.append(f"{thing.label} needs {req_sw.label}, so it comes too.")
            packages += catalog.resolve_packages(thing, index)
            if thing.note and (thing.key in _GENERIC or not thing.label.lower().startswith(said.split()[0])):
                notes.append(f"(I picked {thing.note}.)")
            continue
        w = thing
        if ctx.exists(w) and (explicit or (w not in ORDINARY_WORDS and len(w) > 2)):
            packages.append(w)
            continue
        if index is None:
            if explicit or re.search(r"[\d+.-]", w):
                ctx.refused.append(f"Cannot check \"{w}\": the {ctx.recipe['release']} package index is unavailable.")
            continue
        fixed = None if plural_of_word(w) else closest(w, [a for a in catalog.ALIASES if " " not in a])
        if fixed:
            ctx.corrections.append((w, fixed))
            sw = catalog.ALIASES[fixed]
            packages += catalog.resolve_packages(sw, index)
            continue
        in_list = (re.search(r"(?:,|\band|\bor|&)\s*$", c.s[:pos]) is not None
                   or re.match(r"^\s*(?:,|and\b|or\b|&)", c.s[pos + len(w):]) is not None)
        if explicit or in_list or re.search(r"[\d+.-]", w):
            hints = ctx.suggest(w)
            ctx.refused.append(f"Not added: there is no package \"{w}\" in Debian {ctx.recipe['release']}"
                               + (f" (did you mean {human_list(hints)}?)" if hints else "") + ".")
        else:
            ctx.ignored.append(w)
    packages = list(dict.fromkeys(packages))
    if packages and c.search(r"\binstead\b|\brather\b"):
        replaced = [p for kind in catalog.KINDS.values() if kind & set(packages)
                    for p in ctx.recipe["packages"] if p in kind and p not in packages]
        if replaced:
            ctx.apply({"op": "remove_packages", "packages": replaced})
    if packages:
        ctx.apply({"op": "add_packages", "packages": packages})
    for sw in dict.fromkeys(roles):
        op = {"op": "apply_role", "role": sw.role, "open": ctx.wants_access}
        url = next((s.value for s in ctx.protected.spans if s.kind == "url"), None)
        if url and ROLES[sw.role].files:
            op["url"] = url
        ctx.apply(op)
    for n in dict.fromkeys(notes):
        ctx.say(n)


def _ask(ctx: Ctx, sw: catalog.Software, others: list[catalog.Software], words: list[str]) -> None:
    """"add a database": ask which one, unless the message or the recipe already says."""
    question = ASKS[sw.ask]
    choice_packages = {p for key in question.choices for s in (catalog.BY_KEY.get(key), catalog.BY_KEY.get("role:" + key))
                       if s for slot in s.packages for p in slot}
    named = {p for o in others for slot in o.packages for p in slot} | set(words)
    if named & choice_packages:
        return
    have = [p for p in ctx.recipe["packages"] if p in choice_packages]
    if have:
        ctx.say(f"The recipe already has {human_list(have)} for that.")
        return
    ctx.ask(question.question)


_GENERIC = {"role:web-server": "web", "ask:database": "database"}  # generic entry -> its kind in catalog.KINDS


def _drop_generic(ctx: Ctx, found: list[tuple[int, catalog.Software, str]]) -> list[tuple[int, catalog.Software, str]]:
    """"a web server with apache" means apache, not nginx too; "a database" when one is installed adds nothing."""
    out = []
    for pos, sw, phrase in found:
        kind = catalog.KINDS.get(_GENERIC.get(sw.key, ""), set())
        if kind:
            named = [o for _, o, _ in found if o is not sw and any(p in kind for slot in o.packages for p in slot)]
            if named:
                continue
            have = [p for p in ctx.recipe["packages"] if p in kind]
            if have:
                ctx.say(f"The recipe already has {human_list(have)} for that.")
                continue
        out.append((pos, sw, phrase))
    return out


def _recently_mentioned(ctx: Ctx) -> list[str]:
    """Packages of the recipe named in the latest earlier message that names any: what "it" refers to."""
    present = ctx.recipe["packages"]
    for message in reversed(ctx.history):
        text = message.lower()
        hits = [p for p in present if re.search(B + re.escape(p) + E, text)]
        for phrase, rx in ALIAS_RES:
            if rx.search(text):
                sw = catalog.ALIASES[phrase]
                hits += [p for p in present if any(p in slot for slot in sw.packages)]
        if hits:
            return list(dict.fromkeys(hits))
    return []


def _remove_software(ctx: Ctx, found: list[tuple[catalog.Software, str]], words: list[str]) -> None:
    present = ctx.recipe["packages"]
    targets: list[str] = []
    for sw, phrase in found:
        names = {p for slot in sw.packages for p in slot}
        if sw.key in _CATEGORIES:
            names |= set(_CATEGORIES[sw.key])
        hits = [p for p in present if p in names]
        if not hits:
            ctx.say(f"{sw.label} is not in the recipe, so there was nothing to remove.")
            continue
        targets += hits
        for other in catalog.SOFTWARE:  # compose without docker is useless
            if sw.key in other.requires:
                targets += [p for p in present if any(p in slot for slot in other.packages)]
    for w in words:
        if w in present:
            targets.append(w)
            continue
        fixed = closest(w, present) or closest(w, [a for a in catalog.ALIASES if " " not in a])
        if fixed and fixed in present:
            ctx.corrections.append((w, fixed))
            targets.append(fixed)
        elif fixed:
            ctx.corrections.append((w, fixed))
            _remove_software(ctx, [(catalog.ALIASES[fixed], fixed)], [])
        else:
            ctx.say(f"{w} is not in the recipe, so there was nothing to remove.")
    targets = list(dict.fromkeys(targets))
    if targets:
        ctx.apply({"op": "remove_packages", "packages": targets})
