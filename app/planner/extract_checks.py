"""Questions and tests: "what packages are in it?", "make sure nginx answers on http://localhost/"."""
from __future__ import annotations

import re
from typing import Any

from . import answers, catalog, vocab
from .reading import B, E, KNOWN_WORDS, TEST_START, Clause, Ctx, list_items


# questions

def handle_question(ctx: Ctx, c: Clause) -> None:
    ctx.say(answers.answer(c.s, ctx.recipe))


# tests

_TYPE_WORDS = {"http": "http_responds", "url": "http_responds", "web": "http_responds", "port": "port_open",
               "boot": "boots", "boots": "boots", "file": "file_exists", "user": "user_exists",
               "command": "command_succeeds", "package": "package_installed", "running": "service_running",
               "service": "service_running", "enabled": "service_enabled"}


def _subject(ctx: Ctx, text: str) -> tuple[str | None, Any]:
    """The first software name in text -> (word, Software or package name)."""
    for phrase in catalog.ALIAS_PHRASES:
        if re.search(B + r"[\s-]+".join(map(re.escape, phrase.split())) + E, text):
            return phrase, catalog.ALIASES[phrase]
    for w in re.findall(r"[a-z0-9][a-z0-9+.-]*[a-z0-9+]", text):
        if w in vocab.STOPWORDS or w in KNOWN_WORDS and w not in catalog.ALIASES:
            continue
        if w in ctx.recipe["packages"] or w in ctx.recipe["services"]["enable"] or ctx.exists(w):
            return w, w
    return None, None


def handle_tests(ctx: Ctx, c: Clause) -> None:
    removing = bool(re.match(r"^\s*(?:remove|drop|delete|clear|get\s+rid\s+of|no)\b", c.s))
    if removing:
        return handle_remove_tests(ctx, c)
    m = TEST_START.match(c.s)
    if m:
        c.consume(m.start(), m.end())
    c.take(r"\b(?:tests?|checks?)\b(?:\s+(?:that|for|to\s+check))?")
    items = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+(?:that\s+)?", c.s)
    done = False
    for item in items:
        done |= _one_test(ctx, item.strip())
    if not done:
        ctx.refused.append(f"I could not tell what to test in \"{c.orig.strip()}\". Try \"check that nginx is running\", "
                           "\"make sure port 22 is open\" or \"make sure nginx answers on http://localhost/\".")


def _port_open(ctx: Ctx, item: str, port: int, proto: str) -> bool:
    """"make sure port 6379 is open": a port test, and the port opened when the firewall is on (that is
    what the person asked for); "... is closed/blocked" only tests."""
    ok = ctx.apply({"op": "add_test", "type": "port_open", "params": {"port": port, "protocol": proto}})
    wanted_open = re.search(r"\b(?:open|reachable|accessible|allowed|listening|exposed)\b", item)
    if ok and wanted_open and ctx.recipe["firewall"]["enabled"] and f"{port}/{proto}" not in ctx.recipe["firewall"]["allow"]:
        ctx.apply({"op": "open_ports", "ports": [f"{port}/{proto}"]})
    return ok


def _one_test(ctx: Ctx, item: str) -> bool:
    if not item:
        return False
    spans = {k: ctx.protected.spans[int(k)] for k in re.findall(r"§(\d+)§", item)}
    url = next((s.value for s in spans.values() if s.kind == "url"), None)
    path = next((s.value for s in spans.values() if s.kind == "path"), None)
    quotes = [s.value for s in spans.values() if s.kind in ("quote", "command")]
    if url:
        params: dict[str, Any] = {"url": url}
        sm = re.search(r"\b(?:status|code|returns?|with|gives?)\s+(?:status\s+|code\s+)?(\d{3})\b", item)
        if sm:
            params["status"] = int(sm.group(1))
        if quotes and re.search(r"\b(?:contain|contains|containing|shows?|showing|includes?|with|says?|saying|"
                                r"displays?|text|body)\b", item):
            params["contains"] = quotes[0]
        return ctx.apply({"op": "add_test", "type": "http_responds", "params": params})
    if path:
        if quotes:
            return ctx.apply({"op": "add_test", "type": "file_contains", "params": {"path": path, "text": quotes[0]}})
        return ctx.apply({"op": "add_test", "type": "file_exists", "params": {"path": path}})
    cmd_span = next((s for s in spans.values() if s.kind == "command"), None)
    if cmd_span or (quotes and re.search(r"\b(?:command|succeeds?|works?|runs?|exits?|returns?)\b", item)):
        command = cmd_span.value if cmd_span else quotes[0]
        params = {"command": command}
        others = [q for q in quotes if q != command]
        if others and re.search(r"\b(?:prints?|outputs?|shows?|contains?|says?|includes?|returns?)\b", item):
            params["stdoutContains"] = others[0]
        return ctx.apply({"op": "add_test", "type": "command_succeeds", "params": params})
    if re.search(r"\bboots?\b|\bboot(?:s|ing)?\s+up\b|\bstarts?\s+up\b|\bcomes?\s+up\b|\blogin\s+prompt\b", item) \
            and not re.search(r"\bat\s+boot\b", item):
        tm = re.search(r"\b(?:within|in|under)\s+(\d+)\s*(s|sec|secs|seconds|m|min|mins|minutes)\b", item)
        params = {}
        if tm:
            params["timeoutSeconds"] = int(tm.group(1)) * (60 if tm.group(2).startswith("m") else 1)
        return ctx.apply({"op": "add_test", "type": "boots", "params": params})
    pm = re.search(r"\bport\s+(\d{1,5})(?:\s*/\s*(tcp|udp)|\s+(tcp|udp))?\b|(?<![\w.])(\d{1,5})\s*/\s*(tcp|udp)\b", item)
    if pm:
        port = int(pm.group(1) or pm.group(4))
        proto = pm.group(2) or pm.group(3) or pm.group(5) or "tcp"
        return _port_open(ctx, item, port, proto)
    um = re.search(r"\buser\s+([a-z_][a-z0-9_-]*)", item)
    if um:
        params = {"user": um.group(1)}
        gm = re.search(r"\b(?:in|member\s+of)\s+(?:the\s+)?([a-z_][\w-]*(?:\s*(?:,|and)\s*[a-z_][\w-]*)*)\s+groups?\b", item)
        if gm:
            params["groups"] = [g for g in list_items(gm.group(1)) if g != "the"]
        return ctx.apply({"op": "add_test", "type": "user_exists", "params": params})
    cm = re.match(r"^(?:the\s+)?(?:command\s+)?([a-z0-9][\w./-]*(?:\s+\S+)*?)\s+(?:works|succeeds|runs\s+successfully|"
                  r"passes|exits\s+(?:with\s+)?0|returns\s+0)$", item)
    if cm and (len(cm.group(1).split()) > 1 or item.startswith(("command", "the command"))):
        return ctx.apply({"op": "add_test", "type": "command_succeeds", "params": {"command": cm.group(1)}})
    word, thing = _subject(ctx, item)
    if thing is None:
        return False
    if re.search(r"\binstalled\b|\bis\s+there\b|\bpresent\b", item):
        packages = (catalog.resolve_packages(thing, ctx.index()) if isinstance(thing, catalog.Software) else [thing])
        missing = [p for p in packages if p not in ctx.recipe["packages"]]
        if missing:
            ctx.apply({"op": "add_packages", "packages": missing})
        return all([ctx.apply({"op": "add_test", "type": "package_installed", "params": {"package": p}}) for p in packages])
    service = catalog.service_for(word) if isinstance(thing, catalog.Software) else catalog.service_for(thing)
    if isinstance(thing, catalog.Software) and not any(p in ctx.recipe["packages"] for slot in thing.packages for p in slot):
        ctx.say(f"(Note: {thing.label} is not in the recipe yet, so this test would fail; say \"add {word}\".)")
    kind = "service_enabled" if re.search(r"\benabled\b|\bstarts?\s+(?:at|on)\s+boot\b", item) else "service_running"
    return ctx.apply({"op": "add_test", "type": kind, "params": {"service": service}})


def handle_remove_tests(ctx: Ctx, c: Clause) -> None:
    if c.search(r"\ball\b|\bevery\b|\btests\b(?!\s+(?:for|of|that))|^\s*no\s+(?:more\s+)?tests?\b") \
            and not c.search(r"\b(?:for|of|that)\b"):
        ctx.apply({"op": "remove_tests", "all": True})
        return
    c.take(r"\b(?:remove|drop|delete|clear|get\s+rid\s+of|the|tests?|checks?|that|for|of|which|checks?)\b")
    ph = c.placeholders(ctx)
    if ph:
        ctx.apply({"op": "remove_tests", "subject": ph[0][1].value})
        return
    word, thing = _subject(ctx, c.s)
    if thing is not None:
        subject = catalog.service_for(word) if isinstance(thing, catalog.Software) else thing
        ctx.apply({"op": "remove_tests", "subject": subject})
        return
    for w in c.words():
        if w in _TYPE_WORDS:
            ctx.apply({"op": "remove_tests", "type": _TYPE_WORDS[w]})
            return
        if w.isdigit():
            ctx.apply({"op": "remove_tests", "subject": w})
            return
    ctx.refused.append("Which tests should go? Say \"remove all tests\" or \"remove the nginx test\".")
