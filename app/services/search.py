"""Search across what a caller may see: conversations (names, messages), recipes (packages, hostname), builds,
and for admins the members. One function, `search()`, with the database's own full-text engine underneath:
SQLite FTS5 (bm25 + snippet) or PostgreSQL tsvector (ts_rank + ts_headline).

Tenancy is decided before anything is matched: only documents made from rows this caller can see go into
the per-query index (a temporary table on a connection of its own), so a match can never come from
another organization or from a conversation that is not shared with the caller. The index is built per
query from the org's rows; that is linear in the organization's size, which a self-hosted factory affords,
and needs no second copy of the data to keep in step.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

from sqlalchemy import or_, select, text

from app.extensions import db
from app.models import Build, Conversation, Membership, Message, RecipeVersion, User
from app.services.access import visible_conversations
from app.services.errors import ValidationFailed
from app.services.permissions import role_allows, scopes_allow

KINDS = ("conversation", "recipe", "build", "member")
OPEN, CLOSE = "\u27e6", "\u27e7"  # highlight markers, turned into <mark> after the text is escaped
MAX_TERMS = 8
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class SearchHit:
    kind: str
    id: str
    title: str
    snippet: str  # HTML: the text escaped, matches in <mark>
    rank: float
    url: str
    conversation_id: str | None = None


@dataclass
class _Doc:
    kind: str
    ref: str
    title: str
    body: str
    url: str
    conversation_id: str | None = None


def terms(q: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(q or "")]
    if not words:
        raise ValidationFailed("q: give at least one word to search for", {"q": ["Missing words to search for."]})
    return list(dict.fromkeys(words))[:MAX_TERMS]


def allowed_kinds(role: str, scopes: list[str] | None) -> set[str]:
    """What this caller may search: each kind needs the permission its own list needs."""
    def can(permission: str) -> bool:
        return role_allows(role, permission) and (scopes is None or scopes_allow(scopes, permission))

    kinds = set()
    if can("conversations:read"):
        kinds |= {"conversation", "recipe"}
    if can("builds:read"):
        kinds.add("build")
    if can("members:manage"):
        kinds.add("member")
    return kinds


def _documents(org, kinds: set[str], *, user, role: str, via_api_key: bool) -> list[_Doc]:
    docs: list[_Doc] = []
    visible = visible_conversations(org, user=user, role=role, via_api_key=via_api_key)
    if kinds & {"conversation", "recipe"}:
        conversations = db.session.scalars(visible).all()
        ids = [c.id for c in conversations]
        messages: dict = {}
        for conversation_id, content in db.session.execute(
                select(Message.conversation_id, Message.content).where(Message.conversation_id.in_(ids))
                .order_by(Message.created_at)):
            messages.setdefault(conversation_id, []).append(content)
        current = {(v.conversation_id): v for v in db.session.scalars(
            select(RecipeVersion).join(Conversation, Conversation.id == RecipeVersion.conversation_id)
            .where(RecipeVersion.conversation_id.in_(ids), RecipeVersion.number == Conversation.current_version))}
        for c in conversations:
            if "conversation" in kinds:
                docs.append(_Doc("conversation", str(c.id), c.name, "\n".join([c.name, *messages.get(c.id, [])]),
                                 f"/chat/{c.id}", str(c.id)))
            version = current.get(c.id)
            if "recipe" in kinds and version is not None:
                recipe = version.recipe or {}
                body = " ".join(str(part) for part in (
                    recipe.get("name", ""), recipe.get("hostname", ""), recipe.get("release", ""),
                    " ".join(str(p) for p in recipe.get("packages") or [])) if part)
                docs.append(_Doc("recipe", str(c.id), f"{c.name} · recipe v{version.number}", body,
                                 f"/chat/{c.id}", str(c.id)))
    if "build" in kinds:
        builds = db.session.scalars(select(Build).where(
            Build.org_id == org.id,
            or_(Build.conversation_id.is_(None), Build.conversation_id.in_(visible.with_only_columns(Conversation.id))))
        ).all()
        for b in builds:
            recipe = b.recipe or {}
            body = f"#{b.number} {b.name} {b.status} {recipe.get('name', '')} {recipe.get('hostname', '')} " \
                   f"{' '.join(b.formats or [])}"
            docs.append(_Doc("build", str(b.id), f"Build #{b.number} {b.name} ({b.status})", body, f"/builds/{b.id}",
                             str(b.conversation_id) if b.conversation_id else None))
    if "member" in kinds:
        for u in db.session.scalars(select(User).join(Membership, Membership.user_id == User.id)
                                    .where(Membership.org_id == org.id)):
            docs.append(_Doc("member", str(u.id), u.name or u.email, f"{u.name} {u.email}", "/organization"))
    return docs


def _highlight(raw: str) -> str:
    return escape(raw).replace(OPEN, "<mark>").replace(CLOSE, "</mark>")


def _run_sqlite(conn, docs: list[_Doc], words: list[str], limit: int) -> list[tuple[int, str, float]]:
    conn.execute(text("DROP TABLE IF EXISTS temp.kiln_search"))
    conn.execute(text("CREATE VIRTUAL TABLE temp.kiln_search USING fts5(pos UNINDEXED, title, body)"))
    try:
        conn.execute(text("INSERT INTO temp.kiln_search (pos, title, body) VALUES (:pos, :title, :body)"),
                     [{"pos": i, "title": d.title, "body": d.body} for i, d in enumerate(docs)])
        match = " AND ".join(f'"{w}"*' for w in words)  # words are \w+ only: no FTS5 syntax gets through
        rows = conn.execute(text(
            "SELECT pos, snippet(kiln_search, 2, :open, :close, '…', 16), bm25(kiln_search, 0.0, 5.0, 1.0) AS score "
            "FROM temp.kiln_search WHERE kiln_search MATCH :match ORDER BY score LIMIT :limit"),
            {"open": OPEN, "close": CLOSE, "match": match, "limit": limit}).all()
    finally:
        conn.execute(text("DROP TABLE IF EXISTS temp.kiln_search"))
    return [(int(pos), snippet, -float(score)) for pos, snippet, score in rows]  # bm25: lower is better


def _run_postgresql(conn, docs: list[_Doc], words: list[str], limit: int) -> list[tuple[int, str, float]]:
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.kiln_search"))
    conn.execute(text("CREATE TEMPORARY TABLE kiln_search (pos integer, title text, body text, doc tsvector)"))
    try:
        conn.execute(text("INSERT INTO kiln_search (pos, title, body, doc) VALUES (:pos, :title, :body, "
                          "setweight(to_tsvector('simple', :title), 'A') || to_tsvector('simple', :body))"),
                     [{"pos": i, "title": d.title, "body": d.body} for i, d in enumerate(docs)])
        query = " & ".join(f"{w}:*" for w in words)  # words are \w+ only: no tsquery syntax gets through
        rows = conn.execute(text(
            "SELECT pos, ts_headline('simple', body, q, :options), ts_rank(doc, q) AS score "
            "FROM kiln_search, to_tsquery('simple', :query) AS q WHERE doc @@ q "
            "ORDER BY score DESC, pos LIMIT :limit"),
            {"query": query, "limit": limit,
             "options": f"StartSel={OPEN}, StopSel={CLOSE}, MaxWords=24, MinWords=8, MaxFragments=2, "
                        "FragmentDelimiter=\" … \""}).all()
    finally:
        conn.execute(text("DROP TABLE IF EXISTS pg_temp.kiln_search"))
    return [(int(pos), snippet, float(score)) for pos, snippet, score in rows]


def search(org, q: str, *, user, role: str, scopes: list[str] | None = None, kinds: list[str] | None = None,
           limit: int = 20) -> list[SearchHit]:
    """The best `limit` matches for every word of `q` (prefixes count) among what the caller may see."""
    words = terms(q)
    wanted = allowed_kinds(role, scopes) & (set(kinds) if kinds else set(KINDS))
    if not wanted:
        return []
    docs = _documents(org, wanted, user=user, role=role, via_api_key=scopes is not None)
    if not docs:
        return []
    run = _run_postgresql if db.engine.dialect.name == "postgresql" else _run_sqlite
    # A connection of its own: the temporary index lives and dies with this block (rolled back on close),
    # leaving the request's session and its transaction as they were.
    with db.engine.connect() as conn:
        matches = run(conn, docs, words, limit)
    hits = []
    for pos, snippet, rank in matches:
        doc = docs[pos]
        hits.append(SearchHit(kind=doc.kind, id=doc.ref, title=doc.title, snippet=_highlight(snippet),
                              rank=round(rank, 6), url=doc.url, conversation_id=doc.conversation_id))
    return hits
