"""The emulator's threading HTTP server: it carries the state its handlers serve and ends aborted connections."""

from __future__ import annotations

import sys
import typing as t
from http.server import ThreadingHTTPServer

from .state import State


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    emu: State
    aborted: set[int]

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """A client that hangs up (a killed tap, a reset fault) is normal here, not a traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self.aborted = set()
        super().__init__(*args, **kwargs)

    def shutdown_request(self, request: t.Any) -> None:
        """An aborted connection is closed without the FIN handshake: the client sees a reset."""
        if id(request) in self.aborted:
            self.aborted.discard(id(request))
            self.close_request(request)
        else:
            super().shutdown_request(request)
