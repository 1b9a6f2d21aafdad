"""`copy-db --follow` without servers: binary log row events as PostgreSQL statements and parameters
(`statements`, `values`: each value judged as the copy judges it), the statements that stop following (`ddl`),
and where following stands (`position`: the table, its states and SQL). The step that reads the log and applies
is `steps/follow.py`."""

from .ddl import Structural, ends_transaction, structural
from .position import Position
from .statements import Change, Discard, Forget, Statement, TableWriter
from .values import Choice, Convert, Stored, Unfit, pg_value

__all__ = ["Change", "Choice", "Convert", "Discard", "Forget", "Position", "Statement", "Stored", "Structural",
           "TableWriter", "Unfit", "ends_transaction", "pg_value", "structural"]
