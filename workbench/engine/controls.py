"""The control messages of a running trainer (checkpoint, pause, resume, stop), written into the run
folder by the workbench or the CLI. Rank 0 reads them; with several processes one command a step is
shared with the others, together with any process's stop signal and rank 0's clock (`Team.agree`)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

from workbench.engine.distributed import Team
from workbench.engine.run_folder import RunFolder

PAUSE_POLL_S = 0.2


class Controls:
    """The commands read from the run folder, not yet acted on, and the agreement on them."""

    def __init__(self, run: RunFolder, team: Team):
        self.run = run
        self.team = team
        self.pending: deque[str] = deque()

    def agreed(self, stop_requested: Callable[[], bool], time_up: bool) -> Iterator[str]:
        """The commands every process acts on now, one at a time: "signal" (a process was asked to stop),
        "time" (rank 0's clock, with several processes), or a command read from the run folder."""
        if self.team.main:
            self.pending.extend(self.run.take_controls())
        distributed = self.team.topology.distributed
        while True:
            command = self.pending.popleft() if self.pending else ""
            signalled, command, limit = self.team.agree(stop_requested(), command, self.team.main and time_up)
            if signalled:
                yield "signal"
                return
            if limit and distributed:
                yield "time"
                return
            if command:
                yield command
            if not self.pending or distributed:
                return

    def wait_while_paused(self, stop_requested: Callable[[], bool]) -> bool:
        """Wait for "resume" (True) or "stop" (False, a stop signal too)."""
        while True:
            commands = self.run.take_controls() if self.team.main else []
            command = "stop" if "stop" in commands else "resume" if "resume" in commands else ""
            signalled, command, _ = self.team.agree(stop_requested(), command)
            if signalled or command == "stop":
                return False
            if command == "resume":
                return True
            time.sleep(PAUSE_POLL_S)
