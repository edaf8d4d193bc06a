"""The --state file: the Store saved as JSON, atomically, at most every `debounce_s` seconds after
a mutation and once more on shutdown; loaded at start so that a restart keeps the state.

Tokens, statistics and faults are not saved: after a restart clients re-authenticate (the
contract's 401 path), which is what a real server restart looks like too.
"""

import json
import os
import sys
import threading
import time

from .store import Store


class StateFileError(Exception):
    pass


class StateFile:
    def __init__(self, path: str, store: Store, debounce_s: float = 0.5):
        self.path = os.path.abspath(path)
        self._store = store
        self._debounce_s = debounce_s
        self._cond = threading.Condition()
        self._dirty = False
        self._stopping = False
        self._last_save = 0.0
        self._thread = None
        self.saves = 0

    def load(self) -> bool:
        """Loads the file into the store if it exists. Raises StateFileError if it is unreadable."""
        if not os.path.exists(self.path):
            return False
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            self._store.load_json(data)
        except (OSError, ValueError) as error:
            raise StateFileError(f"cannot load state file {self.path}: {error}") from None
        return True

    def start(self) -> None:
        self._store.add_change_listener(self._mark_dirty)
        self._thread = threading.Thread(target=self._run, name="concerto-sim-state", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the saver and writes the final state."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self.save_now()

    def save_now(self) -> None:
        data = self._store.to_json()
        with self._cond:
            self._dirty = False
        temporary = f"{self.path}.tmp-{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        self._last_save = time.monotonic()
        self.saves += 1

    def _mark_dirty(self) -> None:
        # Called with the store lock held; only touches our condition, never the store.
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                # Coalesce the mutations until `debounce_s` after the previous save.
                deadline = self._last_save + self._debounce_s
                while not self._stopping and time.monotonic() < deadline:
                    self._cond.wait(deadline - time.monotonic())
                if self._stopping:
                    return  # stop() writes the final state
            try:
                self.save_now()
            except OSError as error:
                print(f"concerto-sim: saving state to {self.path} failed: {error}", file=sys.stderr, flush=True)
                with self._cond:
                    self._cond.wait(self._debounce_s)
