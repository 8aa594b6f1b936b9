"""A TCP proxy for fault injection: the hook connects to it, it forwards to the real server.

An asyncio server in a daemon thread. Tests call, from any thread:

- ``cut()``: abort every open connection (both ends see a reset), as a network blip would;
- ``block()``: ``cut()`` and refuse new connections until ``resume()``: the server is gone;
- ``stall()``: keep connections open but forward nothing until ``resume()``: a hung link;
- ``block_for(s)`` / ``stall_for(s)``: the same, resuming by itself after ``s`` seconds.

Packaged proxies (toxiproxy, socat) need a daemon or give no per-test control from
Python; this is small enough to own.
"""

from __future__ import annotations

import asyncio
import threading


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.connections = 0  # accepted so far
        self.faults: list[str] = []  # every fault injected, for reports
        self._loop = asyncio.new_event_loop()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._blocked = False
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._start())
        return self

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._run(self._close())
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _close(self) -> None:
        self._server.close()
        self._abort_all()
        self._flowing.set()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def uri(self) -> str:
        return f"http://localhost:{self.port}"

    # ------------------------------------------------------------------ faults
    def cut(self) -> None:
        self.faults.append("cut")
        self._loop.call_soon_threadsafe(self._abort_all)

    def block(self) -> None:
        self.faults.append("block")

        def _block() -> None:
            self._blocked = True
            self._abort_all()

        self._loop.call_soon_threadsafe(_block)

    def stall(self) -> None:
        self.faults.append("stall")
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        def _resume() -> None:
            self._blocked = False
            self._flowing.set()

        self._loop.call_soon_threadsafe(_resume)

    def block_for(self, seconds: float) -> None:
        self.block()
        self._loop.call_soon_threadsafe(self._loop.call_later, seconds, self._resume_now)

    def stall_for(self, seconds: float) -> None:
        self.stall()
        self._loop.call_soon_threadsafe(self._loop.call_later, seconds, self._resume_now)

    def _resume_now(self) -> None:
        self._blocked = False
        self._flowing.set()

    # ------------------------------------------------------------------ plumbing
    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _abort_all(self) -> None:
        for pair in list(self._pairs):
            for writer in pair:
                writer.transport.abort()
        self._pairs.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._blocked:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        pair = (client_w, server_w)
        self._pairs.add(pair)
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True)
        self._pairs.discard(pair)
        for writer in pair:
            writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await self._flowing.wait()
            if writer.transport.is_closing():
                break
            writer.write(data)
            await writer.drain()
        writer.transport.abort()
