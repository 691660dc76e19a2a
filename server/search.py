"""Prompt search as an index lookup: every word of the query must start a word of the prompt.

SQLite answers from the FTS5 table that migration 0002 keeps in step with `jobs`; PostgreSQL from
the GIN index over to_tsvector('simple', prompt). Both tokenise prompts into words, so "red fox"
finds "A red foxglove" on both, and neither ever scans the whole table with LIKE.
"""

import re

from sqlalchemy import func, literal_column, select, text

from .models import jobs_table

MAX_TERMS = 12
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(query: str) -> list[str]:
    """The words of a search box entry, lowercased, at most MAX_TERMS of them."""
    return [word.lower() for word in _WORD.findall(query or "")][:MAX_TERMS]


def matching_seqs(dialect_name: str, words: list[str]):
    """A SELECT of the `seq` of every job whose prompt matches all `words` (prefixes)."""
    if dialect_name == "sqlite":
        # '"red"* "fox"*': each word quoted (no FTS operators get through) and matched as a prefix.
        expression = " ".join('"' + word.replace('"', '""') + '"*' for word in words)
        return select(literal_column("rowid").label("seq")).select_from(
            text("jobs_fts")
        ).where(text("jobs_fts MATCH :fts_query").bindparams(fts_query=expression))
    tsquery = " & ".join(word + ":*" for word in words)  # \w+ words carry no tsquery operators
    document = func.to_tsvector(literal_column("'simple'"), jobs_table.c.prompt)
    return select(jobs_table.c.seq).where(
        document.op("@@")(func.to_tsquery(literal_column("'simple'"), tsquery))
    )
