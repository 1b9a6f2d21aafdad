"""Who a run is: its id, and the host, process and user it runs as. Recorded in every history row and lock it
writes, shown in reports and notifications, and used to tell a run's own lock from another's."""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunIdentity:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    os_user: str = field(default_factory=getpass.getuser)
