"""The stand-in's recorder and the checks it makes on the caller.

Every call the backend makes on the adapter's API is appended to :data:`CALLS` and, when the
environment variable ``NPU_STANDIN_LOG_DIR`` is set, written as one JSON line to
``<dir>/calls-<pid>.jsonl`` so that tests can read what a ``main.py`` process did (the rank is in
the ``open`` event: in the rank-table-free mode it is known only once the device is open).
"""

import gc
import json
import os
import threading

import tensorflow as tf

CALLS = []
_lock = threading.Lock()


class State:
    """What the stand-in knows about this process."""

    def __init__(self):
        self.handle = None
        self.is_default = False
        self.created_refs = set()
        self.first_variable_recorded = False
        self.creator_scope = None


STATE = State()


def record(event, **data):
    """Appends one call to the log (memory and, if configured, file)."""
    entry = {"event": event, "seq": len(CALLS)}
    entry.update(data)
    with _lock:
        CALLS.append(entry)
        log_dir = os.environ.get("NPU_STANDIN_LOG_DIR")
        if log_dir:
            name = f"calls-{os.getpid()}.jsonl"
            with open(os.path.join(log_dir, name), "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=str) + "\n")
    return entry


def live_variable_count():
    """tf.Variables alive in this process (what would end up on the host, not the NPU)."""
    # Only TensorFlow's own objects: isinstance() on arbitrary objects can run their modules' code.
    return sum(1 for o in gc.get_objects()
               if str(getattr(type(o), "__module__", "")).startswith("tensorflow") and isinstance(o, tf.Variable))


def _creator(next_creator, **kwargs):
    variable = next_creator(**kwargs)
    STATE.created_refs.add(variable.ref())
    if not STATE.first_variable_recorded:
        STATE.first_variable_recorded = True
        record("first_variable_created", name=getattr(variable, "name", "?"))
    return variable


def start_tracking_variables():
    """From now on every tf.Variable created in this thread is noted (the NPU is the default device)."""
    if STATE.creator_scope is None:
        STATE.creator_scope = tf.variable_creator_scope(_creator)
        STATE.creator_scope.__enter__()


def created_on_device(variable):
    return variable.ref() in STATE.created_refs


def reset():
    """Forgets everything (in-process tests)."""
    if STATE.creator_scope is not None:
        STATE.creator_scope.__exit__(None, None, None)
    STATE.__init__()
    CALLS.clear()
    from npu_device import _hccl, _loop, _options

    _hccl.close()
    _options.reset()
    _loop.uninstall()
