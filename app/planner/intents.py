"""Whole-message intents read before the clause pipeline: history, corrections, questions, answers.

- history: "undo", "undo the last two changes", "go back to version 3", "start over" restore an
  earlier version (as a new version) through the `restore_version` operation;
- corrections: "no wait, PostgreSQL not MySQL", "no, btop", "drop everything but ssh", "not apache";
- questions answered from the recipe, its versions and the package index: "what did you change?",
  "what is ncdu?", "which kernel does it have?", "how big will it be?";
- the answer to a question the assistant asked ("Which database ...?" -> "postgres").

`rewrite_intent` either handles the message (True) or rewrites `ctx.protected.text` for the
clause pipeline and returns False.
"""
from __future__ import annotations

import re

from . import catalog
from .reading import ACTION_START, POLITE, QUESTION, Ctx
from .roles import ASKS
from .sizes import heaviest, mb, size_answer
from .wording import describe_changes, human_list

_SIZE_QUESTION = re.compile(
    r"\bhow\s+(?:big|large|heavy)\b|\bwhat\s+size\b|\b(?:image|disk|iso|download)\s+size\b|"
    r"\bhow\s+much\s+(?:space|disk|storage)\b|\bhow\s+many\s+(?:mb|megabytes|gb|gigabytes)\b|"
    r"\bwhat(?:'s|\s+is|s)\s+(?:the\s+)?(?:estimated\s+)?size\b|\bsize\s+of\s+(?:the\s+|this\s+)?(?:image|iso|disk|it)\b|"
    r"\b(?:estimate|estimated)\s+(?:the\s+)?size\b")
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "last": 1}
# "no wait, ...", "nope, ...", "sorry, I meant ...": a bare "no" only with punctuation ("no root login" is a request).
_CORRECTION = re.compile(r"^(?:(?:(?:no+|nope)\s*[,.!:;-]+|(?:no+\s+)?(?:wait|sorry|oops|actually|correction|scratch\s+that|"
                         r"my\s+bad|i\s+meant?|i\s+mean|make\s+that|rather)\b[,.!:;-]*)\s*)+")


def rewrite_intent(ctx: Ctx) -> bool:
    text = ctx.protected.text.strip()
    low = text.lower().rstrip(" .!?")
    body = POLITE.sub("", low).strip()
    for handler in (_history, _question):
        if handler(ctx, body):
            return True
    corrected = _CORRECTION.match(body)
    rest = body[corrected.end():].strip() if corrected else body
    if _keep_only(ctx, rest):
        return True
    m = re.match(r"^(?P<new>.+?)\s*,?\s+(?:not|and\s+not|but\s+not|rather\s+than)\s+(?P<old>[^,]+)$", rest)
    if m and not re.search(r"\b(?:port|ports|firewall|test|check|password|root|login|log\s*in)\b", rest) \
            and not ACTION_START.match(m.group("old")) \
            and not re.search(r"\b(?:is|are|be|do|does|was|were|should|must|can|will|i|we|it)\s*$", m.group("new")):
        new = re.sub(r"^(?:use|add|install|want|take|go\s+with)\s+", "", m.group("new"))
        ctx.protected.text = f"{new} instead of {m.group('old')}"
        return False
    m = re.match(r"^(?:and\s+)?not\s+(?:the\s+|any\s+)?(?P<what>[a-z0-9][\w .+-]*)$", rest)
    if m and not corrected:
        ctx.protected.text = f"remove {m.group('what')}"
        return False
    if corrected and rest and not re.match(r"^(?:also|and|plus)\b", rest) and _replaces_last_change(ctx, rest):
        return False
    pending = next((a for a in ASKS.values() if a.question in ctx.last_reply), None)
    if pending and not ACTION_START.match(rest) and not QUESTION.match(rest):
        ctx.protected.text = "add " + rest
        return False
    if corrected and rest:
        ctx.protected.text = rest
    return False


# ---- history ------------------------------------------------------------------------------------

def _history(ctx: Ctx, body: str) -> bool:
    number = None
    m = re.match(r"^(?:please\s+)?(?:undo|revert|roll\s*back|reverse)(?:\s+(?:that|it|this|the\s+last(?:\s+(?P<n>\w+))?"
                 r"\s*(?:changes?|edits?|steps?|ones?)?|my\s+last\s+(?:changes?|edits?|message)|the\s+previous\s+changes?|"
                 r"the\s+change|last\s+change))?(?:\s+please)?$", body)
    if m:
        steps = m.group("n")
        count = _NUMBERS.get(steps, int(steps) if steps and steps.isdigit() else 1)
        current = _current_number(ctx)
        if current is not None:
            number = current - count
    m2 = re.match(r"^(?:go|get|roll|revert|return|switch)\s+(?:back\s+)?(?:to\s+)?(?:the\s+)?(?:recipe\s+(?:of\s+|from\s+)?)?"
                  r"(?:version|v)\s*(\d+)$|^(?:restore|bring\s+back|use)\s+(?:the\s+)?(?:recipe\s+(?:of\s+|from\s+)?)?"
                  r"(?:version|v)\s*(\d+)(?:\s+again)?$", body)
    if m2:
        number = int(m2.group(1) or m2.group(2))
    start_over = re.match(r"^(?:start\s+(?:over|again|from\s+scratch|fresh)|reset(?:\s+(?:the\s+)?(?:recipe|everything|it|all))?|"
                          r"begin\s+again|from\s+scratch|clear\s+(?:the\s+)?(?:recipe|everything)|throw\s+it\s+all\s+away)$", body)
    if start_over:
        number = 1
    if not (m or m2 or start_over):
        return False
    if not ctx.versions:
        ctx.refused.append("I cannot go back here: this conversation's earlier versions were not given to me. "
                           "Restore one from the version history, or tell me what to reverse (\"remove nginx\").")
        return True
    if number is None or number < 1:
        ctx.refused.append("There is nothing earlier to go back to: this is the first version.")
        return True
    if number not in ctx.versions:
        ctx.refused.append(f"There is no version {number}; the versions are 1 to {max(ctx.versions)}.")
        return True
    before = ctx.recipe
    if not ctx.apply({"op": "restore_version", "number": number}):
        return True
    if ctx.recipe == before:
        ctx.lines[-1] = f"Version {number} is the same as the current recipe, so nothing changed."
    elif start_over:
        ctx.lines[-1] = "Started over from the plain Debian recipe (version 1): " + describe_changes(before, ctx.recipe) + "."
    return True


def _current_number(ctx: Ctx) -> int | None:
    for n in sorted(ctx.versions, reverse=True):
        if ctx.versions[n] == ctx.recipe:
            return n
    return max(ctx.versions) if ctx.versions else None


# ---- questions ----------------------------------------------------------------------------------

def _question(ctx: Ctx, body: str) -> bool:
    if re.match(r"^(?:what|what's|whats)\s+(?:did\s+you|have\s+you|just)\s+(?:change|changed|do|done)|"
                r"^what\s+(?:changed|has\s+changed|was\s+changed)(?:\s+(?:last|just\s+now|in\s+the\s+last\s+(?:step|turn)))?$|"
                r"^(?:show|tell)\s+me\s+(?:the\s+)?(?:last\s+)?changes?$", body):
        return _what_changed(ctx, None, None)
    m = re.match(r"^(?:what|which)\s+(?:changed|changes|is\s+different|are\s+the\s+differences?)\s+between\s+(?:version\s+|v)?(\d+)"
                 r"\s+and\s+(?:version\s+|v)?(\d+)$|^(?:diff|compare)\s+(?:version\s+|v)?(\d+)\s+(?:and|with|to)\s+(?:version\s+|v)?(\d+)$", body)
    if m:
        a, b = [int(g) for g in m.groups() if g]
        return _what_changed(ctx, a, b)
    if re.search(r"\bwhich\s+kernel\b|\bwhat\s+kernel\b|\bkernel\s+version\b|\bwhat\s+linux\s+version\b", body):
        index = ctx.index()
        version = index.version("linux-image-amd64") if index is not None else None
        ctx.say(f"It runs Debian {ctx.recipe['release']}'s standard kernel (linux-image-amd64"
                + (f", version {version} in the current index" if version else "") + ").")
        return True
    if re.match(r"^(?:make|get)\s+(?:it|the\s+image|this)\s+(?:smaller|lighter|slimmer|leaner|tiny|minimal)|"
                r"^(?:smaller|lighter|slimmer)\s+(?:image|please)|^reduce\s+(?:the\s+)?(?:image\s+)?size", body):
        return _smaller(ctx)
    if _SIZE_QUESTION.search(body) and not re.match(r"^(?:set|make|change|reduce|shrink|increase|add|resize|give|use)\b", body):
        index = ctx.index()
        if index is None:
            ctx.say(f"I cannot estimate the size now: the {ctx.recipe['release']} package index is unavailable. "
                    "Every build reports each artifact's size.")
        else:
            ctx.say(size_answer(index, ctx.recipe))
        return True
    m = re.match(r"^(?:what|what's|whats)\s+(?:is|are)?\s*(?:the\s+)?(?:package\s+)?([a-z0-9][a-z0-9+.-]*)(?:\s+package)?"
                 r"(?:\s+(?:for|used\s+for))?$|^what\s+does\s+(?:the\s+)?(?:package\s+)?([a-z0-9][a-z0-9+.-]*)\s+do$", body)
    if m:
        name = m.group(1) or m.group(2)
        if name in {"it", "this", "that", "in", "installed", "there", "the", "recipe", "release", "format", "hostname",
                    "timezone", "locale", "keyboard", "firewall", "version", "name"}:
            return False
        return _what_is(ctx, name)
    return False


def _smaller(ctx: Ctx) -> bool:
    """The image is Debian's minimal base plus the recipe's packages: what can go is the person's call."""
    packages = ctx.recipe["packages"]
    if not packages:
        ctx.say("It is already Debian's minimal base with no extra packages; the rootfs or OCI formats are smaller "
                "than an ISO or a disk image (\"make it a rootfs tarball\").")
        return True
    index = ctx.index()
    weights = heaviest(index, ctx.recipe) if index is not None else []
    heavy = f" The heaviest, with what each pulls in: {', '.join(f'{p} ({mb(k)})' for p, k in weights)}." \
        if weights else ""
    ctx.say(f"The image is Debian's minimal base plus {len(packages)} package{'s' if len(packages) > 1 else ''}: "
            f"{', '.join(packages)}.{heavy} Tell me which to remove (\"remove {(weights or [(packages[-1],)])[0][0]}\"), "
            f"or keep only what you need (\"remove everything except {packages[0]}\"); a rootfs tarball or OCI image "
            "is also smaller than an ISO.")
    return True


def _what_changed(ctx: Ctx, a: int | None, b: int | None) -> bool:
    if not ctx.versions:
        ctx.say("I have no version history in this conversation yet.")
        return True
    if a is None:
        b = _current_number(ctx)
        a = b - 1 if b else None
        if not a:
            ctx.say("Nothing yet: this is the starting recipe (version 1).")
            return True
    missing = [n for n in (a, b) if n not in ctx.versions]
    if missing:
        ctx.say(f"There is no version {missing[0]}; the versions are 1 to {max(ctx.versions)}.")
        return True
    changes = describe_changes(ctx.versions[a], ctx.versions[b])
    ctx.say(f"From version {a} to {b}: {changes}." if changes else f"Versions {a} and {b} are the same.")
    return True


def _what_is(ctx: Ctx, name: str) -> bool:
    sw = catalog.ALIASES.get(name)
    packages = catalog.resolve_packages(sw, ctx.index()) if sw and not sw.ask else [name]
    index = ctx.index()
    if index is None:
        ctx.say(f"I cannot look up {name}: the {ctx.recipe['release']} package index is unavailable.")
        return True
    described = []
    for p in packages:
        hit = next((d for n, d in index.search(p, 5) if n == p), None)
        if hit:
            state = "in the recipe" if p in ctx.recipe["packages"] else "not in the recipe"
            described.append(f"{p} ({index.version(p)}): {hit} ({state})")
    if not described:
        if sw and sw.ask:
            return False
        hints = index.suggest(name, 3)
        ctx.say(f"There is no package \"{name}\" in Debian {ctx.recipe['release']}"
                + (f"; did you mean {human_list(hints)}?" if hints else "."))
        return True
    ctx.say((f"{sw.label}: " if sw and sw.label.lower() != name else "") + "; ".join(described) + ".")
    return True


# ---- corrections --------------------------------------------------------------------------------

def _keep_only(ctx: Ctx, rest: str) -> bool:
    m = re.match(r"^(?:(?:remove|drop|delete|uninstall|get\s+rid\s+of|lose)\s+)?(?:all|everything|all\s+(?:the\s+)?packages|"
                 r"every\s+package)\s+(?:but|except(?:\s+for)?|apart\s+from|other\s+than|besides)\s+(?:the\s+)?(?P<keep>.+)$|"
                 r"^(?:keep|leave)\s+only\s+(?P<keep2>.+)$|^only\s+keep\s+(?P<keep3>.+)$", rest)
    if not m:
        return False
    keep_words = m.group("keep") or m.group("keep2") or m.group("keep3")
    keep: set[str] = set()
    unknown = []
    for item in re.split(r"\s*(?:,|\band\b|&)\s*", keep_words):
        item = item.strip()
        if not item:
            continue
        sw = catalog.ALIASES.get(item)
        if sw:
            keep |= {p for slot in sw.packages for p in slot}
        elif item in ctx.recipe["packages"]:
            keep.add(item)
        else:
            unknown.append(item)
    if unknown:
        ctx.refused.append(f"I do not know \"{human_list(unknown)}\" in this recipe, so I removed nothing. "
                           f"The packages are: {', '.join(ctx.recipe['packages']) or 'none'}.")
        return True
    drop = [p for p in ctx.recipe["packages"] if p not in keep]
    if not drop:
        ctx.say("There is nothing else to remove.")
        return True
    ctx.apply({"op": "remove_packages", "packages": drop})
    return True


def _replaces_last_change(ctx: Ctx, rest: str) -> bool:
    """"no wait, btop" right after "add htop": what the last turn added gives way to what is named now
    (of the same kind when the last turn added several things). True when it rewrote the message."""
    current = _current_number(ctx)
    if not current or current - 1 not in ctx.versions:
        return False
    rest = re.sub(r"^(?:use|add|install|take|go\s+with|i\s+want)\s+", "", rest)
    before = ctx.versions[current - 1]
    added = [p for p in ctx.recipe["packages"] if p not in before["packages"]]
    if not added:
        return False
    named: set[str] = set()
    for item in re.split(r"\s*(?:,|\band\b|&)\s*", rest):
        sw = catalog.ALIASES.get(re.sub(r"^(?:an?|the)\s+", "", item.strip()))
        named |= {p for slot in sw.packages for p in slot} if sw else {item.strip()}
    same_kind = [p for p in added if any(p in kind and named & kind for kind in catalog.KINDS.values())]
    one_thing = len(added) == 1 or (all(p in catalog.PACKAGE_SOFTWARE for p in added)
                                     and len({catalog.PACKAGE_SOFTWARE[p].key for p in added}) == 1)
    old = same_kind or (added if one_thing else [])
    if not old or set(old) <= named:
        return False
    ctx.protected.text = f"{rest} instead of {' and '.join(old)}"
    return True
