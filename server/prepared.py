"""Statements compiled once for the engine's dialect and run straight on a DBAPI cursor.

Submit and claim run on every request of the two busiest endpoints. Through Connection.execute,
SQLAlchemy's per-call work (the Connection and Transaction objects, the compiled-cache lookup, the
execution context, the result set) cost more CPU than SQLite's own work for one job
(bench/bench_server.py, part 1). A Core statement compiled once gives the SQL text and the order
of its parameters for that dialect; SQLAlchemy's own bind and result processors still convert the
values, so rows come back as Connection.execute returns them (datetimes parsed from SQLite's text,
booleans from its integers) and PostgreSQL runs the same code.
"""

from contextlib import contextmanager

from sqlalchemy import bindparam
from sqlalchemy.engine import Dialect, Engine


def list_params(name: str, count: int, type_) -> list:
    """Parameters name_0 .. name_{count-1}, one per item of a list: what an expanding IN would
    render at each execution, fixed at one length (fill them with list_values)."""
    return [bindparam(f"{name}_{index}", type_=type_) for index in range(count)]


def list_values(name: str, items: list) -> dict:
    return {f"{name}_{index}": item for index, item in enumerate(items)}


class PreparedStatement:
    """One Core statement compiled for one dialect; run() binds a dict of values and returns rows.

    Only statements whose SQL does not depend on the values can be prepared: no expanding IN
    (build one statement per list length with list_params instead) and no literal-rendered
    parameters.
    """

    def __init__(self, statement, dialect: Dialect):
        compiled = statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("statements with expanding or literal parameters can't be prepared")
        self.sql = compiled.string
        bind_from_name = {name: bind for bind, name in compiled.bind_names.items()}
        self._positional_names = list(compiled.positiontup) if compiled.positional else None
        # Values the statement carries itself ('queued', 0.0); run() must be given all the others.
        self._fixed_values = {
            name: bind.effective_value for name, bind in bind_from_name.items() if not bind.required
        }
        self._given_names = frozenset(bind_from_name) - frozenset(self._fixed_values)
        self._bind_processors = [
            (name, processor)
            for name, bind in bind_from_name.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self._dialect = dialect
        self._columns = list(statement.exported_columns)  # what RETURNING or SELECT gives back
        # Known at the first result, from the DBAPI's type codes (PostgreSQL numerics need them).
        self._result_processors: list[tuple] = []  # [(column key, processor)]
        self._result_keys: list[str] | None = None

    def run(self, cursor, values: dict) -> list[dict]:
        """Execute on the DBAPI cursor; the rows as {column key: value}, converted as SQLAlchemy
        would. Raises KeyError when `values` are not exactly the statement's parameters."""
        if values.keys() != self._given_names:
            raise KeyError(f"parameters {sorted(values)} given, {sorted(self._given_names)} needed")
        parameters = {**self._fixed_values, **values}
        for name, process in self._bind_processors:
            parameters[name] = process(parameters[name])
        if self._positional_names is not None:
            parameters = [parameters[name] for name in self._positional_names]
        cursor.execute(self.sql, parameters)
        if not self._columns:
            return []
        if self._result_keys is None:
            self._learn_result_types(cursor.description)
        rows = [dict(zip(self._result_keys, row_values)) for row_values in cursor.fetchall()]
        for row in rows:
            for key, process in self._result_processors:
                row[key] = process(row[key])
        return rows

    def _learn_result_types(self, description) -> None:
        dialect = self._dialect
        processors = [
            (column.key, column.type.dialect_impl(dialect).result_processor(dialect, entry[1]))
            for column, entry in zip(self._columns, description, strict=True)
        ]
        self._result_processors = [(key, process) for key, process in processors if process]
        self._result_keys = [key for key, _ in processors]  # set last: other threads test it


@contextmanager
def dbapi_transaction(engine: Engine):
    """A pooled DBAPI cursor in one transaction: commits on success, rolls back on any exception.

    A connection lost on the way is invalidated, so the pool does not hand it out again.
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            yield cursor
            connection.commit()
        except BaseException as error:
            dbapi_error = engine.dialect.loaded_dbapi.Error
            if isinstance(error, dbapi_error) and engine.dialect.is_disconnect(
                error, connection.dbapi_connection, cursor
            ):
                connection.invalidate(error)
            else:
                connection.rollback()
            raise
        finally:
            cursor.close()
    finally:
        connection.close()
