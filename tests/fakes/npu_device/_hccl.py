"""Real collectives between the rank processes of a test, over loopback TCP.

HCCL joins every rank when the device opens and then reduces and broadcasts tensors among them.
The stand-in does the same with one hub process and a socket per other rank:

* **Joining** (``open()``, like HCCL's initialisation): in the rank-table mode rank 0 is the hub;
  it listens on an ephemeral port of 127.0.0.1 and publishes the port in a readiness file
  (``$NPU_STANDIN_RENDEZVOUS_DIR``, default the temporary directory; the name holds the job id and
  the rank table's path), written to a temporary name and renamed. Every other rank waits for that
  file, connects and says who it is. In the rank-table-free mode the process whose
  ``ASCEND_DEVICE_ID`` is ``CM_CHIEF_DEVICE`` on ``CM_WORKER_IP == CM_CHIEF_IP`` is the hub and
  listens on ``CM_CHIEF_IP:CM_CHIEF_PORT``; it gives the ranks out in order of
  (``CM_WORKER_IP``, device id). ``open()`` returns only when all ranks have joined.
* **A collective**: every rank sends its arrays to the hub, the hub combines them in rank order
  (0, 1, ...) and sends the same bytes back to every rank. The result is therefore bitwise equal on
  all ranks and deterministic. The hub checks that every rank sent the same operation, dtypes and
  shapes (HCCL requires it) and raises otherwise.

Nothing here depends on timing: a rank waits on a file or a socket, never on a sleep's length; a
peer that disappears ends the wait with an error (``NPU_STANDIN_TIMEOUT_S``, default 600 s, bounds
the joining).
"""

import hashlib
import json
import os
import socket
import struct
import tempfile
import time

import numpy as np

_REDUCE = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}
# What HCCL moves on Ascend 910 training servers (float64 is not among them).
SUPPORTED_DTYPES = ("int8", "int16", "int32", "int64", "float16", "float32", "bfloat16")

_COMM = None


class CollectiveError(RuntimeError):
    """A peer left, or the ranks disagree on a collective."""


def _timeout_s():
    return float(os.environ.get("NPU_STANDIN_TIMEOUT_S", "600"))


def _send(sock, header, arrays=()):
    blob = json.dumps(header).encode()
    payload = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    sock.sendall(struct.pack("!QQ", len(blob), len(payload)) + blob + payload)


def _recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 22))
        if not chunk:
            raise CollectiveError("a peer rank closed its connection (it failed or exited)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv(sock):
    blob_len, payload_len = struct.unpack("!QQ", _recv_exact(sock, 16))
    header = json.loads(_recv_exact(sock, blob_len))
    payload = _recv_exact(sock, payload_len)
    arrays, offset = [], 0
    for dtype, shape in zip(header.get("dtypes", []), header.get("shapes", [])):
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        arrays.append(np.frombuffer(payload[offset:offset + size], dtype=dt).reshape(shape))
        offset += size
    return header, arrays


class Communicator:
    """This process's place in the job: its rank, and sockets to the hub (or, on the hub, to every rank)."""

    def __init__(self, rank, size, hub_rank, peers=None, hub=None):
        self.rank = rank
        self.size = size
        self.hub_rank = hub_rank
        self._peers = peers or {}  # on the hub: rank -> socket
        self._hub = hub  # elsewhere: the socket to the hub
        self.calls = 0

    @property
    def is_hub(self):
        return self._hub is None

    def run(self, op, arrays, reduction=None, root=None):
        """Runs one collective; returns the arrays every rank receives."""
        self.calls += 1
        header = {"op": op, "reduction": reduction, "root": root, "call": self.calls,
                  "dtypes": [a.dtype.str for a in arrays], "shapes": [list(a.shape) for a in arrays]}
        if not self.is_hub:
            _send(self._hub, header, arrays)
            reply, result = _recv(self._hub)
            if "error" in reply:
                raise CollectiveError(reply["error"])
            return result
        contributions = {self.rank: list(arrays)}
        for rank in sorted(self._peers):
            theirs, theirs_arrays = _recv(self._peers[rank])
            mismatch = [k for k in ("op", "reduction", "root", "call", "dtypes", "shapes")
                        if theirs[k] != header[k]]
            if mismatch:
                error = (f"rank {rank} ran {theirs['op']}({theirs['reduction'] or theirs['root']}) call "
                         f"{theirs['call']} with {theirs['dtypes']} {theirs['shapes']} while rank {self.rank} ran "
                         f"{op}({reduction or root}) call {self.calls} with {header['dtypes']} {header['shapes']}")
                for peer in self._peers.values():
                    _send(peer, {"error": error})
                raise CollectiveError(error)
            contributions[rank] = theirs_arrays
        ordered = [contributions[r] for r in range(self.size)]
        if op == "broadcast":
            result = ordered[root]
        else:
            combine = _REDUCE[reduction]
            result = []
            for i in range(len(arrays)):
                total = ordered[0][i].copy()
                for per_rank in ordered[1:]:
                    total = combine(total, per_rank[i])
                result.append(total)
        for rank in sorted(self._peers):
            _send(self._peers[rank], {"dtypes": header["dtypes"], "shapes": header["shapes"]}, result)
        return result

    def close(self):
        for sock in list(self._peers.values()) + ([self._hub] if self._hub else []):
            try:
                sock.close()
            except OSError:
                pass
        self._peers, self._hub = {}, None


def _rendezvous_file(environ):
    table = os.path.abspath(environ.get("RANK_TABLE_FILE", ""))
    key = hashlib.sha1(f"{table}|{environ.get('JOB_ID', '')}".encode()).hexdigest()[:16]
    directory = environ.get("NPU_STANDIN_RENDEZVOUS_DIR") or tempfile.gettempdir()
    return os.path.join(directory, f"npu-standin-{key}.port")


def _wait_for(what, attempt):
    """Calls ``attempt()`` until it returns something; fails after the join timeout."""
    deadline = time.monotonic() + _timeout_s()
    while True:
        found = attempt()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise CollectiveError(f"npu_device stand-in: gave up waiting for {what} after {_timeout_s():g} s")
        time.sleep(0.02)  # polling a readiness file or a listening port; the result does not depend on it


def _accept_all(server, count, token):
    hellos = {}
    server.settimeout(_timeout_s())
    while len(hellos) < count:
        try:
            conn, _ = server.accept()
        except socket.timeout:
            raise CollectiveError(f"npu_device stand-in: {len(hellos)} of {count} other rank(s) joined") from None
        conn.settimeout(None)
        hello, _ = _recv(conn)
        if hello.get("token") != token:
            conn.close()  # another job on this machine
            continue
        hellos[conn] = hello
    return hellos


def _connect(host, port, hello):
    def attempt():
        try:
            sock = socket.create_connection((host, port), timeout=5)
        except OSError:
            return None
        sock.settimeout(None)
        return sock

    sock = _wait_for(f"the hub at {host}:{port}", attempt)
    _send(sock, hello)
    return sock


def join_rank_table_mode(rank, size, environ):
    """Joins ranks 0..size-1 of a rank-table job; returns this process's communicator."""
    path = _rendezvous_file(environ)
    token = f"{os.path.abspath(environ.get('RANK_TABLE_FILE', ''))}|{environ.get('JOB_ID', '')}|{size}"
    if rank == 0:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(size)
        temp = f"{path}.{os.getpid()}.tmp"
        with open(temp, "w", encoding="utf-8") as f:
            f.write(str(server.getsockname()[1]))
        os.replace(temp, path)
        try:
            hellos = _accept_all(server, size - 1, token)
        finally:
            server.close()
            try:
                os.remove(path)
            except OSError:
                pass
        peers = {}
        for conn, hello in hellos.items():
            if hello["rank"] in peers or not 0 < hello["rank"] < size:
                raise CollectiveError(f"npu_device stand-in: two processes claim rank {hello['rank']} (RANK_ID)")
            peers[hello["rank"]] = conn
        for conn in peers.values():
            _send(conn, {"welcome": True})
        return Communicator(0, size, 0, peers=peers)

    def connect_to_rank_0():
        try:
            with open(path, encoding="utf-8") as f:
                port = int(f.read())
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except (OSError, ValueError):
            return None  # no readiness file yet, or a stale one of an earlier job
        sock.settimeout(None)
        return sock

    while True:
        hub = _wait_for(f"rank 0 (readiness file {path})", connect_to_rank_0)
        _send(hub, {"token": token, "rank": rank})
        try:
            _recv(hub)  # welcome: every rank has joined
        except CollectiveError:
            hub.close()
            continue  # another job's listener on a reused port: look again
        return Communicator(rank, size, 0, hub=hub)


def join_cm_mode(size, device_id, environ):
    """Joins a rank-table-free job (``CM_*``); the hub gives out the ranks."""
    chief_ip, chief_port = environ["CM_CHIEF_IP"], int(environ["CM_CHIEF_PORT"])
    worker_ip, chief_device = environ["CM_WORKER_IP"], int(environ["CM_CHIEF_DEVICE"])
    token = f"cm|{chief_ip}|{chief_port}|{size}"
    me = (worker_ip, int(device_id))
    if worker_ip == chief_ip and int(device_id) == chief_device:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((chief_ip, chief_port))
        server.listen(size)
        try:
            hellos = _accept_all(server, size - 1, token)
        finally:
            server.close()
        order = sorted([me] + [(h["worker_ip"], h["device_id"]) for h in hellos.values()])
        if len(set(order)) != len(order):
            raise CollectiveError(f"npu_device stand-in: two workers use the same (CM_WORKER_IP, device): {order}")
        peers = {}
        for conn, hello in hellos.items():
            rank = order.index((hello["worker_ip"], hello["device_id"]))
            peers[rank] = conn
            _send(conn, {"rank": rank, "hub_rank": order.index(me)})
        return Communicator(order.index(me), size, order.index(me), peers=peers)
    hub = _connect(chief_ip, chief_port, {"token": token, "worker_ip": worker_ip, "device_id": int(device_id)})
    assigned, _ = _recv(hub)
    return Communicator(assigned["rank"], size, assigned["hub_rank"], hub=hub)


def set_communicator(comm):
    global _COMM
    _COMM = comm


def communicator():
    if _COMM is None:
        raise CollectiveError("npu_device stand-in: no collective group; open() a device with RANK_SIZE > 1 first")
    return _COMM


def close():
    global _COMM
    if _COMM is not None:
        _COMM.close()
    _COMM = None
