"""Answers to questions about the current recipe: read from it, never changing it."""
from __future__ import annotations

import re

from app.engine.recipe import dump_yaml

from . import catalog, vocab
from .wording import describe_test, human_list

CAPABILITIES = (
    "I can change the recipe when you say things like:\n"
    "- \"add nginx and docker\", \"install htop, jq and tmux\", \"remove docker\", \"apache instead of nginx\"\n"
    "- \"switch to bookworm\" / \"use Debian 13\", \"make it a qcow2 disk\" (or ISO, container image, rootfs tarball)\n"
    "- \"set the hostname to web01\", \"timezone Europe/Berlin\", \"German keyboard\", \"locale de_DE.UTF-8\"\n"
    "- \"create user alice in the sudo group with key ssh-ed25519 AAAA...\", \"give alice a password 'secret'\"\n"
    "- \"open port 80 and 443\", \"only allow ssh and http\", \"disable the firewall\"\n"
    "- \"create /etc/motd with content 'hello'\"\n"
    "- \"make sure nginx answers on http://localhost/\", \"check that ssh is running\"\n"
    "- roles: \"a mail relay\", \"a file share for the office\", \"a build agent for our CI\", \"a kiosk\", \"a router\"\n"
    "- settings: \"no root login over ssh\", \"run my backup script every night\", \"rotate logs daily\", "
    "\"add a 2G swap file\"\n"
    "- \"undo\", \"go back to version 3\", \"start over\", \"no wait, PostgreSQL not MySQL\"\n"
    "and answer questions such as \"what packages are in it?\", \"what did you change?\" or \"what is ncdu?\"."
)


def _packages(r: dict) -> str:
    if not r["packages"]:
        return "No extra packages yet (just the Debian base system)."
    return f"{len(r['packages'])} package{'s' if len(r['packages']) > 1 else ''}: {', '.join(r['packages'])}."


def _firewall(r: dict) -> str:
    fw = r["firewall"]
    if not fw["enabled"]:
        return "The firewall is off, so every listening port is reachable" + (
            f" (rules kept for when it is on: {', '.join(fw['allow'])})." if fw["allow"] else ".")
    if not fw["allow"]:
        return "The firewall is on and allows no incoming ports."
    return f"The firewall is on and allows {human_list(fw['allow'])}."


def _users(r: dict) -> str:
    if not r["users"]:
        return "No users besides root."
    parts = []
    for u in r["users"]:
        bits = []
        if u.get("groups"):
            bits.append("groups " + ", ".join(u["groups"]))
        if u.get("sshKeys"):
            bits.append(f"{len(u['sshKeys'])} SSH key{'s' if len(u['sshKeys']) > 1 else ''}")
        if u.get("passwordHash"):
            bits.append("a password")
        parts.append(u["name"] + (f" ({'; '.join(bits)})" if bits else ""))
    return "Users: " + "; ".join(parts) + "."


def _services(r: dict) -> str:
    s = r["services"]
    text = f"Enabled services: {', '.join(s['enable'])}." if s["enable"] else "No services enabled explicitly."
    if s["disable"]:
        text += f" Disabled: {', '.join(s['disable'])}."
    return text


def _files(r: dict) -> str:
    if not r["files"]:
        return "No files added."
    return "Files: " + ", ".join(f"{f['path']} ({len(f['content'])} bytes, mode {f['mode']})" for f in r["files"]) + "."


def _tests(r: dict) -> str:
    if not r["tests"]:
        return "No tests yet."
    return "Tests: " + "; ".join(describe_test(t) for t in r["tests"]) + "."


def _commands(r: dict) -> str:
    if not r["commands"]:
        return "No build commands."
    return "Build commands: " + "; ".join(f"`{c}`" for c in r["commands"]) + "."


def summary(r: dict) -> str:
    lines = [
        f"{r['name']}: Debian {vocab.RELEASE_LABEL[r['release']]}, {r['architecture']}, output {r['format']} "
        f"({vocab.FORMAT_LABEL[r['format']]}).",
        _packages(r),
        f"Hostname {r['hostname']}, timezone {r['timezone']}, locale {r['locale']}, keyboard {r['keyboard']}.",
        _users(r), _services(r), _firewall(r), _files(r), _tests(r),
    ]
    if r["commands"]:
        lines.append(_commands(r))
    return "\n".join(lines)


def _has(r: dict, subject: str) -> str | None:
    """'is docker installed?' style checks; None when the subject is not a known name."""
    release = vocab.RELEASE_WORDS.get(subject)
    if release:
        return (f"Yes, it is {vocab.RELEASE_LABEL[release]}." if release == r["release"]
                else f"No, it is {vocab.RELEASE_LABEL[r['release']]}. Say \"switch to {release}\" to change it.")
    if subject in vocab.FORMAT_LABEL:
        return (f"Yes, the output is {subject}." if subject == r["format"]
                else f"No, the output is {r['format']} ({vocab.FORMAT_LABEL[r['format']]}).")
    sw = catalog.ALIASES.get(subject)
    if sw is not None:
        names = {p for slot in sw.packages for p in slot}
        present = [p for p in r["packages"] if p in names]
        if present:
            return f"Yes, {sw.label} is in the recipe ({', '.join(present)})."
        return f"No, {sw.label} is not in the recipe. Say \"add {subject}\" to add it."
    if subject in r["packages"]:
        return f"Yes, {subject} is in the recipe."
    if re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", subject) and subject not in vocab.STOPWORDS:
        return f"No, {subject} is not in the recipe."
    return None


_TOPICS: list[tuple[str, callable]] = [
    (r"\b(?:yaml|json|whole|full|entire|complete)\b|\bshow\b.*\brecipe\b|\brecipe\b.*\blook", lambda r: "```yaml\n" + dump_yaml(r) + "```"),
    (r"\bsummar|\bstatus\b|\boverview\b|\beverything\b|\bwhat\b.*\bso\s+far\b|\bcurrent\s+(?:state|setup|config)", summary),
    (r"\bpackages?\b|\bsoftware\b|\binstalled\b|\bprograms?\b|\bwhat'?s\s+in\s+it\b|\bin\s+(?:it|the\s+image)\b", _packages),
    (r"\brelease\b|\bversion\b|\bdebian\b|\bbookworm\b|\btrixie\b|\bdistro\b", lambda r: f"The release is {vocab.RELEASE_LABEL[r['release']]}."),
    (r"\bformat\b|\boutput\b|\bkind\s+of\s+image\b|\bimage\s+type\b|\biso\b|\bqcow2?\b|\bbuild\s+produce", lambda r: f"The output format is {r['format']} ({vocab.FORMAT_LABEL[r['format']]})."),
    (r"\bports?\b|\bfirewall\b|\bopen\b|\ballowed\b", _firewall),
    (r"\bhost\s*name\b|\bhost\b|\bcalled\b|\bname\b", lambda r: f"The hostname is {r['hostname']} (recipe name {r['name']})."),
    (r"\btime\s*zone\b|\btz\b|\btime\b|\bclock\b", lambda r: f"The timezone is {r['timezone']}."),
    (r"\blocale\b|\blanguage\b", lambda r: f"The locale is {r['locale']}."),
    (r"\bkeyboard\b|\blayout\b|\bkeymap\b", lambda r: f"The keyboard layout is {r['keyboard']}."),
    (r"\busers?\b|\baccounts?\b|\blog\s*in\b|\bssh\s+keys?\b", _users),
    (r"\bservices?\b|\bdaemons?\b|\bstart\b.*\bboot\b", _services),
    (r"\bfiles?\b", _files),
    (r"\btests?\b|\bchecks?\b|\bassertions?\b", _tests),
    (r"\bcommands?\b", _commands),
]


def answer(question: str, recipe: dict) -> str:
    q = question.lower().strip().rstrip("?").strip()
    if re.search(r"\b(?:help|what\s+can\s+you\s+do|how\s+does\s+this\s+work|what\s+do\s+you\s+understand)\b", q):
        return CAPABILITIES
    m = re.match(r"^(?:is|are|does|do)\s+(?:it|the\s+(?:image|recipe|server|box))?\s*(?:have|has|include|contain|got)?\s*"
                 r"(?:an?\s+|the\s+)?([a-z0-9][a-z0-9+.-]*(?:\s+[a-z0-9][a-z0-9+.-]*)?)\s*(?:installed|included|in\s+it|in\s+there|there|on\s+it)?$", q)
    if m:
        subject = m.group(1).strip()
        for candidate in (subject, subject.split()[0]):
            text = _has(recipe, candidate)
            if text:
                return text
    if re.fullmatch(r"[a-z0-9][a-z0-9+.-]*", q) and not re.search(r"\b(?:summary|overview|status|recipe)\b", q):
        text = _has(recipe, q)
        if text:
            return text
    found = []
    for pattern, fn in _TOPICS:
        if re.search(pattern, q):
            if fn in (summary,) or (found and pattern == _TOPICS[0][0]):
                continue
            text = fn(recipe)
            if pattern == _TOPICS[0][0]:
                return text  # the whole recipe says it all
            if text not in found:
                found.append(text)
    return " ".join(found) if found else summary(recipe)
