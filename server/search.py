"""Prompt search as an index lookup: every word of the query must start a word of the prompt.

A query with no words at all (an emoji, punctuation alone: "🦊", "?!") has nothing for the word
indexes to find; it matches the prompts that contain it as typed instead (a LIKE with % and _
escaped), rather than dropping the filter and listing everything. Such queries are rare and short,
so their table scan is the exception the rule below allows.

SQLite answers from the FTS5 table that migration 0002 keeps in step with `jobs`; PostgreSQL from
the GIN index over to_tsvector('simple', prompt). Both tokenise prompts into words, so "red fox"
finds "A red foxglove" on both, and neither ever scans the whole table with LIKE.

On SQLite a page of results is read by walking the FTS5 index newest first (`ORDER BY rowid DESC`
is native to FTS5, and rowid is jobs.seq) and joining each hit to its job, so a page stops after
`limit` hits. Going through `seq IN (all matches)` instead first collects every match and sorts
them: for a word in 13% of 100,000 prompts, 2.8 ms instead of 1.1 ms for the first page and 11 ms
instead of 1.5 ms for a later one (bench/bench_server.py builds that table).
"""

import re

from sqlalchemy import String, bindparam, column, func, literal_column, select, table

from .models import jobs_table

# The FTS5 table of migration 0002; its rowid is the job's seq, and its own name as a column is how
# FTS5 is told "match against any column" (`jobs_fts MATCH ...`).
FTS_TABLE = table("jobs_fts", column("rowid"), column("jobs_fts"))
SEARCH_QUERY = "search_query"  # the bound parameter select_matching_jobs() leaves open
LIKE_PATTERN = "like_pattern"  # the bound parameter select_containing_jobs() leaves open
LIKE_ESCAPE = "/"

MAX_TERMS = 12
# Letters and digits: the underscore that \w also takes separates words in both word indexes.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def query_words(query: str) -> list[str]:
    """The words of a search box entry, lowercased, at most MAX_TERMS of them."""
    return [word.lower() for word in _WORD.findall(query or "")][:MAX_TERMS]


def search_query(dialect_name: str, words: list[str]) -> str:
    """The full-text query for `words`, each a prefix, for the SEARCH_QUERY parameter."""
    if dialect_name == "sqlite":
        # '"red"* "fox"*': each word quoted (no FTS operators get through) and matched as a prefix.
        return " ".join('"' + word.replace('"', '""') + '"*' for word in words)
    return " & ".join(word + ":*" for word in words)  # words carry no tsquery operators


def _matches(dialect_name: str, query):
    """The WHERE clause `prompt matches query` (SQLite: over jobs_fts, which must be in FROM)."""
    if dialect_name == "sqlite":
        return FTS_TABLE.c.jobs_fts.op("MATCH")(query)
    document = func.to_tsvector(literal_column("'simple'"), jobs_table.c.prompt)
    return document.op("@@")(func.to_tsquery(literal_column("'simple'"), query))


def select_matching_jobs(dialect_name: str):
    """SELECT of every jobs column for the jobs whose prompt matches the SEARCH_QUERY parameter.

    Returns (statement, seq_column): order and page by seq_column, which is jobs.seq itself on
    PostgreSQL and the FTS rowid on SQLite (equal to jobs.seq, but it lets FTS5 walk its index in
    order and stop early).
    """
    query = bindparam(SEARCH_QUERY, type_=String())
    if dialect_name == "sqlite":
        statement = (
            select(*jobs_table.c)
            .join_from(jobs_table, FTS_TABLE, FTS_TABLE.c.rowid == jobs_table.c.seq)
            .where(_matches(dialect_name, query))
        )
        return statement, FTS_TABLE.c.rowid
    return select(*jobs_table.c).where(_matches(dialect_name, query)), jobs_table.c.seq


def like_pattern(query: str) -> str:
    """The LIKE pattern for prompts containing `query` as typed: its % and _ match themselves."""
    escaped = "".join(
        LIKE_ESCAPE + char if char in ("%", "_", LIKE_ESCAPE) else char for char in query
    )
    return f"%{escaped}%"


def select_containing_jobs():
    """SELECT of every jobs column for the jobs whose prompt contains the LIKE_PATTERN parameter's
    text (a query with no words: search by words would have nothing to look up)."""
    pattern = bindparam(LIKE_PATTERN, type_=String())
    return select(*jobs_table.c).where(jobs_table.c.prompt.like(pattern, escape=LIKE_ESCAPE))
