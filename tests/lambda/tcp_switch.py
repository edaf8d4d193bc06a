"""A TCP forwarder that can be switched off: while off, connections are accepted and closed at
once (the service is unreachable); while on, bytes go both ways to the target. Lets a test make one
AWS service (e.g. DynamoDB, through AWS_ENDPOINT_URL_DYNAMODB) unreachable for a moment without
restarting the process that uses it."""

import socket
import threading


class TcpSwitch:
    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.on = True
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.refused = 0
        self.closed = False
        self.connections = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def set(self, on):
        with self.lock:
            self.on = on
            if not on:  # cut the open connections too (a kept-alive connection must not slip through)
                for conn in list(self.connections):
                    try:
                        conn.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                on = self.on
                if not on:
                    self.refused += 1
            if not on:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.lock:
                self.connections.discard(source)
                self.connections.discard(sink)
            source.close()

    def close(self):
        self.closed = True
        self.set(False)
        self.listener.close()
