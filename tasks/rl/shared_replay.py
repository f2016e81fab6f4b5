"""One replay buffer shared by all agents on a machine: the paper's setting for walker and humanoid,
where 12 buffers of 1e6 transitions did not fit in memory.

With Ray, the buffer lives in shared memory (``/dev/shm``) owned by a Ray actor per node and run (named
after the node id and the map's :func:`~pbt_evo.train.current_scope`, created by the first agent on
that node, ``num_cpus=0``). With :class:`~pbt_evo.SerialMap` it is an ordinary buffer in the one
process. Agents talk to it through :class:`SharedReplay`, which has the interface of
:class:`~tasks.rl.replay.ReplayBuffer` that :class:`~tasks.rl.task.RLMember` uses:

- **writes** are staged locally and sent to the actor one episode at a time; the actor is the only
  writer, so an episode stays contiguous in the ring (n-step and frame-stack lookups never cross into
  another agent's steps). A generation's last, cut-off episode is sent by :meth:`SharedReplay.flush`;
- **samples** are drawn by each agent itself from its mapping of the shared memory, with no call to
  the actor and no copy beyond the batch: as fast as an agent's own buffer, in parallel across agents.
  The actor retires the oldest slots before overwriting them (``first_key``) and publishes new ones
  after (``n_written``); a sample racing that window can, rarely, read a transition being replaced.

The actor is started by the driver when the map starts (:meth:`RLTask.node_services`), so it outlives
a crashed worker and ends with the run at the latest. It and its shared memory are freed when the
run's map closes (:meth:`RLTask.close`, called by the workers before they end); segments left by a
killed run are freed when the next shared buffer is created on that machine (their owner's lock is no
longer held: :func:`free_orphaned_segments`). Creating a buffer checks that ``/dev/shm`` can hold it
and reserves its pages, so a machine without the room fails at once with what to change. Nothing of the buffer travels
with an individual (its extras keep only the agent's step counter): a child, like every agent on the
node, learns from all of the node's experience. The buffer is not checkpointed: a resumed run refills
it (updates wait until it can serve a batch).

>>> spec = dict(capacity=100, frame_shape=(3,), action_dim=1, frame_stack=1, nstep=1)
>>> node = NodeReplay(**spec)                      # in-process (no Ray)
>>> a, b = (SharedReplay(node, batch_size=4, gamma=0.9) for _ in range(2))
>>> a.add_first(np.zeros(3, np.float32))
>>> for t in range(5):
...     a.add(np.zeros(1, np.float32), 1.0, 1.0, np.ones(3, np.float32))
>>> a.flush()
>>> b.ready(), node.size()                          # b samples what a collected
(True, 6)
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import secrets
import shutil
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from .replay import ReplayBuffer, newest_frame

log = logging.getLogger(__name__)


def _attach(name: str) -> SharedMemory:
    """Map an existing segment without adopting it: before Python 3.13 attaching registers the segment
    with this process's resource tracker, which would unlink it when this process exits."""
    try:
        return SharedMemory(name=name, track=False)  # Python >= 3.13
    except TypeError:
        seg = SharedMemory(name=name)
        resource_tracker.unregister(seg._name, "shared_memory")  # type: ignore[attr-defined]
        return seg


SEGMENT_PREFIX = "pbt_evo_rb_"  # + a random tag + "_" + array name; the owner holds "<tag>_lock" locked
SHM_DIR = "/dev/shm"


def try_lock(path: str) -> int | None:
    """An fd holding an exclusive ``flock`` on ``path``, or None if another process holds it.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "lock")
    >>> fd = try_lock(path); try_lock(path) is None   # a second open file description is refused
    True
    >>> os.close(fd)
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def free_orphaned_segments(shm_dir: str = SHM_DIR) -> list[str]:
    """Unlink the shared-memory segments of buffers whose owner no longer holds its lock (a run that was
    killed: Ray kills actors without running their cleanup). A lock, unlike a pid, is right across pid
    namespaces that share ``/dev/shm``. Returns the names freed."""
    freed = []
    for lock in glob.glob(os.path.join(shm_dir, SEGMENT_PREFIX + "*_lock")):
        fd = try_lock(lock)
        if fd is None:
            continue  # its owner is alive
        try:
            tag = os.path.basename(lock)[:-len("lock")]
            for path in glob.glob(os.path.join(shm_dir, tag + "*")):
                if path != lock:
                    os.unlink(path)
                    freed.append(os.path.basename(path))
            os.unlink(lock)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return sorted(freed)


def check_shared_memory(spec: dict[str, Any], shm_dir: str = SHM_DIR) -> None:
    """Raise (``MemoryError``, saying what to change) if ``shm_dir`` cannot hold a buffer of ``spec``."""
    nbytes = shared_bytes(spec)
    if not os.path.isdir(shm_dir):
        raise MemoryError(f"the shared replay buffer needs {shm_dir} (Linux shared memory); "
                          f"set task.args.shared_replay=false on this machine")
    free = shutil.disk_usage(shm_dir).free
    if nbytes > free:
        raise MemoryError(f"the shared replay buffer needs {nbytes / 2**30:.2f} GiB in {shm_dir} but "
                          f"{free / 2**30:.2f} GiB are free: lower task.args.buffer_size, set "
                          f"task.args.shared_replay=false, or give the machine a larger {shm_dir} "
                          f"(docker: --shm-size)")


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


def shared_bytes(spec: dict[str, Any]) -> int:
    """Bytes of shared memory a buffer of ``spec`` takes."""
    return sum(_nbytes(shape, dtype) for shape, dtype in ReplayBuffer.layout(**spec).values())


def _arrays(spec: dict[str, Any], segments: dict[str, SharedMemory]) -> dict[str, np.ndarray]:
    return {name: np.ndarray(shape, dtype, buffer=segments[name].buf)
            for name, (shape, dtype) in ReplayBuffer.layout(**spec).items()}


class NodeReplay:
    """The shared buffer's owner and only writer (the Ray actor's class, or an in-process object).

    ``shared_memory=True`` (as the actor) keeps the arrays in named shared-memory segments that agents
    on the node map (:meth:`segments`); otherwise in this process.
    """

    def __init__(self, shared_memory: bool = False, **spec: Any):
        self.spec = spec
        self._segments: dict[str, SharedMemory] = {}
        storage = None
        self._lock: int | None = None
        self._tag = ""
        if shared_memory:
            free_orphaned_segments()
            check_shared_memory(spec)
            tag = self._tag = f"{SEGMENT_PREFIX}{secrets.token_hex(6)}_"
            self._lock = try_lock(os.path.join(SHM_DIR, tag + "lock"))  # held while this owner lives
            for name, (shape, dtype) in ReplayBuffer.layout(**spec).items():
                size = max(1, _nbytes(shape, dtype))
                seg = SharedMemory(name=tag + name, create=True, size=size)  # zero-filled
                self._segments[name] = seg
                try:  # take the pages now: a full /dev/shm fails here, loudly, not as a SIGBUS mid-run
                    os.posix_fallocate(seg._fd, 0, size)  # type: ignore[attr-defined]
                except OSError as exc:
                    self.release()
                    raise MemoryError(f"cannot reserve {size / 2**30:.2f} GiB of shared memory for the "
                                      f"replay buffer ({exc}): lower task.args.buffer_size or enlarge "
                                      f"{SHM_DIR}") from None
            storage = _arrays(spec, self._segments)
        self.buffer = ReplayBuffer(**spec, storage=storage)

    def segments(self) -> dict[str, str]:
        """Shared-memory segment name of each array (empty for an in-process buffer)."""
        return {name: seg.name for name, seg in self._segments.items()}

    def add_episode(self, frames: np.ndarray, action: np.ndarray, reward: np.ndarray,
                    discount: np.ndarray) -> None:
        self.buffer.add_episode(frames, action, reward, discount)

    def size(self) -> int:
        return len(self.buffer)

    def release(self) -> None:
        """Unlink the shared memory (processes that map it keep their mapping until they drop it)."""
        for seg in self._segments.values():
            try:
                seg.unlink()
            except FileNotFoundError:
                pass
        if self._lock is not None:
            try:
                os.unlink(os.path.join(SHM_DIR, self._tag + "lock"))
            except FileNotFoundError:
                pass
            os.close(self._lock)
            self._lock = None

    def __del__(self) -> None:
        if "_segments" in self.__dict__:  # Ray may drop an instance whose __init__ never ran
            self.release()


class NodeConnection:
    """A process's link to its node's buffer: the owner (actor handle or in-process object) and a
    readable view of the data. One per process and run, shared by the members it trains.

    ``resolve(refresh)`` returns the owner; it is asked again (``refresh=True``) if the actor died.
    ``spec``: the buffer's :class:`ReplayBuffer` arguments.
    """

    def __init__(self, resolve: Any, spec: dict[str, Any]):
        self._resolve = resolve
        self.spec = spec
        self._segments: list[SharedMemory] = []
        self.owner: Any = None
        self.view: ReplayBuffer
        self.connect(refresh=False)

    def local(self) -> bool:
        return isinstance(self.owner, NodeReplay)

    def connect(self, refresh: bool = True) -> None:
        """(Re)attach to the node's buffer."""
        self.owner = self._resolve(refresh)
        if self.local():
            self.view = self.owner.buffer
            return
        import ray

        names = ray.get(self.owner.segments.remote())
        segments = {k: _attach(name) for k, name in names.items()}
        view = ReplayBuffer(**self.spec, storage=_arrays(self.spec, segments))
        # a previous mapping stays open: closing it would unmap memory that arrays still taken from the
        # old view may point to (numpy does not pin a SharedMemory's buffer)
        self._segments += list(segments.values())
        self.view = view

    def release(self) -> None:
        """Ask the owner to free the buffer (at the end of a run; idempotent)."""
        if self.local():
            self.owner.release()
            return
        import ray
        from ray.exceptions import RayActorError

        try:
            ray.get(self.owner.release.remote())
            ray.kill(self.owner)
        except RayActorError:
            pass  # already gone (another worker of the run ended it)

    def add_episode(self, *arrays: np.ndarray) -> None:
        if self.local():
            self.owner.add_episode(*arrays)
            return
        import ray
        from ray.exceptions import RayActorError

        try:
            ray.get(self.owner.add_episode.remote(*arrays))
        except RayActorError:  # the buffer's owner died: a new, empty buffer on this node
            log.warning("the shared replay buffer of this node is gone; starting a new, empty one")
            self.connect(refresh=True)
            ray.get(self.owner.add_episode.remote(*arrays))


def replay_actor(scope: str, node: str, spec: dict[str, Any]) -> Any:
    """The run's buffer actor on Ray node ``node`` (created if it does not exist yet). It belongs to
    whoever creates it first: the driver, through :meth:`RLTask.node_services` when the map starts,
    so it lives as long as the run and survives a crashed worker (a worker creates it only if the
    driver did not, e.g. for a map built without ``local_task``)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return ray.remote(NodeReplay).options(
        name=f"pbt_evo.replay.{scope}.{node}", get_if_exists=True, num_cpus=0, max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
    ).remote(shared_memory=True, **spec)


def node_replay(scope: str, spec: dict[str, Any], cache: dict[str, Any]) -> NodeConnection:
    """This process's connection to the run's buffer on this node: inside a Ray worker, the node's named
    actor with shared memory; elsewhere an in-process :class:`NodeReplay`. ``cache`` (the task's) keeps
    the connection."""
    if scope in cache:
        return cache[scope]
    import ray

    in_worker = ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None

    def resolve(refresh: bool) -> Any:
        if not in_worker:
            return NodeReplay(**spec)
        return replay_actor(scope, ray.get_runtime_context().get_node_id(), spec)

    cache[scope] = NodeConnection(resolve, spec)
    return cache[scope]


class SharedReplay:
    """An agent's side of the node's buffer, with :class:`ReplayBuffer`'s interface (``add_first``,
    ``add``, ``ready``, ``sample``, ``flush``, ``export``, ``load``). ``node`` is a
    :class:`NodeConnection`, an in-process :class:`NodeReplay`, or a function returning a connection,
    called on first use (so building a member, e.g. a worker's warm-up, connects to nothing).
    ``spec``: the buffer's arguments (taken from ``node`` when it is not a function)."""

    def __init__(self, node: Any, batch_size: int, gamma: float, spec: dict[str, Any] | None = None):
        self._source = node
        self._node: NodeConnection | None = None
        spec = spec if spec is not None else node.spec
        self.frame_stack = int(spec.get("frame_stack", 1))
        self.nstep = int(spec.get("nstep", 1))
        self.batch_size, self.gamma = int(batch_size), float(gamma)
        self._frames: list[np.ndarray] = []
        self._steps: list[tuple[np.ndarray, float, float]] = []
        self._next: tuple[np.ndarray, ...] | None = None  # a batch drawn by ready(), handed out by sample()

    @property
    def node(self) -> NodeConnection:
        if self._node is None:
            source = self._source
            if isinstance(source, NodeConnection):
                self._node = source
            elif isinstance(source, NodeReplay):
                self._node = NodeConnection(lambda refresh: source, source.spec)
            else:
                self._node = source()
        return self._node

    # -- writing: staged, sent an episode at a time ---------------------------------------------------
    def add_first(self, obs: np.ndarray) -> None:
        """Start an episode (the previous one, if any, is sent)."""
        self.flush()
        self._frames.append(newest_frame(obs, self.frame_stack))

    def add(self, action: np.ndarray, reward: float, discount: float, next_obs: np.ndarray) -> None:
        if not self._frames:
            raise RuntimeError("add_first(obs) must start an episode before add(...)")
        self._steps.append((np.asarray(action, np.float32), float(reward), float(discount)))
        self._frames.append(newest_frame(next_obs, self.frame_stack))

    def flush(self) -> None:
        """Send the staged episode (complete or cut off) to the node's buffer."""
        if self._steps:
            self.node.add_episode(np.stack(self._frames), np.stack([s[0] for s in self._steps]),
                                  np.array([s[1] for s in self._steps], np.float32),
                                  np.array([s[2] for s in self._steps], np.float32))
        self._frames, self._steps = [], []

    # -- sampling: from this process's view of the shared memory --------------------------------------
    def ready(self) -> bool:
        """Whether a batch can be sampled now (draws it, for :meth:`sample`)."""
        view = self.node.view
        if self._next is None and len(view) > self.nstep + 1:
            try:
                self._next = view.sample(self.batch_size, self.gamma)
            except RuntimeError:  # not yet batch_size complete n-step transitions
                pass
        return self._next is not None

    def sample(self, batch_size: int, gamma: float) -> tuple[np.ndarray, ...]:
        if (batch_size, gamma) != (self.batch_size, self.gamma):
            raise ValueError(f"this shared buffer serves batches of {self.batch_size} at gamma {self.gamma}, "
                             f"not {batch_size} at {gamma}")
        if not self.ready():
            raise RuntimeError("the shared replay buffer cannot serve a batch yet: collect more steps first")
        batch, self._next = self._next, None
        return batch

    def size(self) -> int:
        """Transitions in the node's buffer (staged steps not included)."""
        return len(self.node.view)

    # -- nothing travels with the individual ---------------------------------------------------------
    def export(self) -> dict[str, np.ndarray]:
        return {}

    def load(self, data: Any) -> None:  # a parent's own buffer is not merged into the shared one
        return None
