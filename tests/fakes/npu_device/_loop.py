"""Loop sinking as the adapter does it: a ``tf.function`` whose last operation is its one loop runs the
loop's *body* ``loop size`` times, with the loop's initial inputs.

The adapter (``tf_adapter_2.x/npu_device/core/op_executors/npu_concrete_graph.cpp``,
``NpuMutableConcreteGraph::TryTransToNpuLoopGraph``; the same in
``core/optimizers/runtime/npu_graph_loop_optimizer.cpp``) rewrites a function graph that consumes an
iterator resource when the graph holds exactly one ``While`` node and every op node of the graph is an
ancestor of it (nothing follows or reads the loop): the ``While`` node is replaced by a call of its body
function with the ``While``'s own inputs, and the graph is marked ``NeedLoop``. ``NpuConcreteGraph::RunImpl``
then runs that graph ``g_npu_loop_size`` times on the device (``set_npu_loop_size``, or ``NPU_LOOP_SIZE``
read when the adapter loads) and consumes the iterator as many times. Each run starts from the same inputs:
the loop index stays at its initial value, values carried from one iteration to the next are not, the
loop's condition is never evaluated (the body runs ``loop size`` times whatever it says), and the body's
outputs are dropped. Only variables carry state from one step to the next. A graph with a ``While`` that
something else follows runs as it is ("builtin loop").

The stand-in does the same to ``tf.function`` calls made eagerly once a device is the default: it rewrites
the function's ``GraphDef`` in the same way, imports it, and runs the body call ``loop size`` times with the
call's inputs. Each sunk call is recorded (``loop_sunk``), as is a loop left alone (``loop_builtin``).
"""

import os

import tensorflow as tf
from tensorflow.python.eager.polymorphic_function import polymorphic_function
from tensorflow.python.framework import op_def_registry

from npu_device import _standin

_WHILE_OPS = ("While", "StatelessWhile")
STATE = {"loop_size": None, "original_call": None}
_CACHE = {}


def _initial_loop_size():
    """``NPU_LOOP_SIZE`` as the adapter reads it when it loads (``npu_global.cpp``), default 1."""
    try:
        return max(int(os.environ.get("NPU_LOOP_SIZE", "1")), 1)
    except ValueError:
        return 1


def loop_size():
    if STATE["loop_size"] is None:
        STATE["loop_size"] = _initial_loop_size()
    return STATE["loop_size"]


def set_loop_size(n):
    STATE["loop_size"] = int(n)


def _consumes_iterator(graph_def):
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return any(n.op.startswith("IteratorGetNext") for n in nodes)


def _ancestors(nodes, start):
    by_name = {n.name: n for n in nodes}
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(i.lstrip("^").split(":")[0] for i in by_name[name].input)
    return seen


def _kept_nodes(graph_def, outputs):
    """The nodes of the graph the adapter receives: TensorFlow prunes what no output, argument or stateful
    op needs (``PruneFunctionBody``) before a device sees the function."""
    library = {f.signature.name for f in graph_def.library.function}
    roots = list(outputs)
    for node in graph_def.node:
        op_def = op_def_registry.get(node.op)
        if node.op in library or op_def is None or op_def.is_stateful or node.op == "Placeholder":
            roots.append(node.name)
    kept = set()
    for root in roots:
        kept |= _ancestors(graph_def.node, root)
    return kept


def _plan(concrete):
    """``("sunk", body call)``, ``("builtin", None)`` or ``(None, None)`` for a concrete function."""
    graph_def = concrete.graph.as_graph_def()
    loops = [n for n in graph_def.node if n.op in _WHILE_OPS]
    if not loops or not _consumes_iterator(graph_def):
        return None, None
    needed = _kept_nodes(graph_def, [t.op.name for t in concrete.outputs])
    if len(loops) > 1 or needed - _ancestors(graph_def.node, loops[0].name):
        return "builtin", None
    loop = loops[0]
    rewritten = tf.compat.v1.GraphDef()
    rewritten.CopyFrom(graph_def)
    for node in rewritten.node:
        if node.name == loop.name:
            inputs = list(node.input)
            node.Clear()
            node.name, node.op = loop.name, loop.attr["body"].func.name  # a call of the body function
            node.input.extend(inputs)
    placeholders = [t.op.name for t in concrete.inputs]

    def body_graph(*flat):
        tf.graph_util.import_graph_def(rewritten, input_map={f"{p}:0": t for p, t in zip(placeholders, flat)},
                                       name="")

    wrapped = tf.compat.v1.wrap_function(body_graph, [tf.TensorSpec(t.shape, t.dtype) for t in concrete.inputs])
    call = wrapped.prune(feeds=wrapped.inputs, fetches=[wrapped.graph.get_operation_by_name(loop.name)])
    return "sunk", call


def _sinking_call(function, *args, **kwargs):
    original = STATE["original_call"]
    if kwargs or not tf.executing_eagerly() or _standin.STATE.handle is None:
        return original(function, *args, **kwargs)
    try:
        concrete = function.get_concrete_function(*args)
        key = id(concrete)
        if key not in _CACHE:
            _CACHE[key] = (concrete,) + _plan(concrete)
        _, kind, call = _CACHE[key]
    except Exception as e:  # noqa: BLE001 - not a graph the adapter would sink: run it as it is
        _standin.record("loop_analysis_failed", function=getattr(function, "__name__", "?"), error=str(e)[:200])
        return original(function, *args, **kwargs)
    if kind != "sunk":
        if kind == "builtin":
            _standin.record("loop_builtin", function=getattr(function, "__name__", "?"))
        return original(function, *args, **kwargs)
    flat = tf.nest.flatten(args, expand_composites=True) + list(concrete.captured_inputs)
    n = loop_size()
    _standin.record("loop_sunk", function=getattr(function, "__name__", "?"), n=n)
    for _ in range(n):
        call(*flat)
    return None


def install():
    """From now on eager ``tf.function`` calls sink their loop as the adapter does (``as_default()``)."""
    if STATE["original_call"] is None:
        STATE["original_call"] = polymorphic_function.Function.__call__
        polymorphic_function.Function.__call__ = _sinking_call


def uninstall():
    if STATE["original_call"] is not None:
        polymorphic_function.Function.__call__ = STATE["original_call"]
        STATE["original_call"] = None
    STATE["loop_size"] = None
    _CACHE.clear()
