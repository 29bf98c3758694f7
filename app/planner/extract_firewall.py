"""Firewall: "open port 80 and 443", "only ssh and http", "close 8080", "disable the firewall"."""
from __future__ import annotations

import re

from .wording import normalize_port
from .reading import FIREWALL_SERVICES, Clause, Ctx


# firewall

_FW_NAMES = sorted(FIREWALL_SERVICES, key=len, reverse=True)
_PORT_ITEM = (r"(?:\d{1,5}(?:\s*/\s*(?:tcp|udp)|\s+(?:tcp|udp)(?![\w/]))?|(?:" + "|".join(map(re.escape, _FW_NAMES)) + r")"
              r"(?![\w-]))")
_PORT_LIST = _PORT_ITEM + r"(?:\s*(?:,|and|&|or|\+|/(?=\s*\d))\s*(?:ports?\s+)?(?:the\s+)?" + _PORT_ITEM + r")*"


def _ports_in(text: str, bad: list[str]) -> list[str]:
    ports: list[str] = []
    for item in re.finditer(_PORT_ITEM, text):
        word = re.sub(r"\s+", " ", item.group(0)).strip()
        if word in FIREWALL_SERVICES:
            ports += FIREWALL_SERVICES[word]
            continue
        num, _, proto = word.replace(" ", "/").partition("/")
        try:
            ports.append(normalize_port(f"{num}/{proto}" if proto else num))
        except ValueError as err:
            bad.append(str(err))
    return list(dict.fromkeys(ports))


def handle_firewall(ctx: Ctx, c: Clause) -> None:
    off = c.take(r"\b(?:disable|turn\s+off|deactivate|switch\s+off|remove|drop|no|without|don't\s+(?:want|need)|"
                 r"do\s+not\s+(?:want|need)|get\s+rid\s+of)\s+(?:a\s+|the\s+|any\s+)?firewall\b|\bfirewall\s+(?:off|disabled)\b")
    if off:
        ctx.apply({"op": "set_firewall", "enabled": False})
        return
    on = c.take(r"\b(?:enable|turn\s+on|activate|switch\s+on|add|set\s+up|with|use|want|need|configure)\s+"
                r"(?:a\s+|the\s+)?firewall\b|\bfirewall\s+(?:on|enabled)\b|\b(?:a|the)\s+firewall\b(?!\s+(?:box|appliance))")
    exact = c.search(r"\b(?:only|just|nothing\s+but|nothing\s+except|exclusively)\b")
    closing = c.search(r"\b(?:close|closed|block|blocked|deny|denied|shut|disallow|remove|drop|delete|unexpose)\b")
    firewall_verb = c.search(r"\b(?:open|opens|opened|allow|allows|allowed|expose|exposes|exposed|unblock|reachable|"
                             r"accessible|permit|permits|close|closed|block|blocked|deny|shut|disallow|only|just)\b")
    found: list[str] = []
    bad: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in re.finditer(r"\bports?\s*:?\s*(" + _PORT_LIST + r")", c.s):
        found += _ports_in(m.group(1), bad)
        spans.append((m.start(), m.end()))
    if firewall_verb:
        verbs = (r"\b(?:open|opens|allow|allows|expose|exposes|permit|permits|unblock|close|block|blocks|deny|shut|"
                 r"disallow|only|just|nothing\s+but|except)\s+"
                 r"(?:(?:up|in|incoming|inbound|traffic|access|connections|on|for|to|the|ports?|firewall|allows?|"
                 r"opens?|permits?)\s+)*(" + _PORT_LIST + r")(?:\s+(?:for|so)\s+(?:the\s+)?[a-z][\w.-]*)?")
        for m in re.finditer(verbs, c.s):
            found += _ports_in(m.group(1), bad)
            spans.append((m.start(), m.end()))
        for m in re.finditer(r"(?<![\w/])(" + _PORT_LIST + r")\s+(?:(?:ports?|should\s+be|must\s+be|are|is)\s+)*"
                             r"(?:open|opened|allowed|reachable|accessible|exposed|closed|blocked)\b", c.s):
            found += _ports_in(m.group(1), bad)
            spans.append((m.start(), m.end()))
    found = list(dict.fromkeys(found))
    ctx.refused += [f"Not applied: {b}." for b in dict.fromkeys(bad)]
    for start, end in sorted(spans, reverse=True):
        c.consume(start, end)
    if found:
        c.take(r"\b(?:open|opened|allow|allowed|expose|exposed|close|closed|block|blocked|only|just|in|the|firewall|"
               r"incoming|traffic|ports?|reachable|accessible)\b")
        if closing and not exact:
            ctx.apply({"op": "close_ports", "ports": found})
        elif exact:
            ctx.apply({"op": "set_firewall", "enabled": True, "allow": found})
        else:
            ctx.apply({"op": "open_ports", "ports": found})
    elif on:
        ctx.apply({"op": "set_firewall", "enabled": True})
    elif c.search(r"\bports?\b") and c.search(r"\b(?:open|close|allow|block)\b"):
        ctx.refused.append("Which ports? For example: \"open port 80 and 443\" or \"only allow ssh and http\".")
        c.take(r"\bports?\b")
