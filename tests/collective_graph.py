"""Finds the collective operations of a traced ``tf.function``, wherever they are, and checks them.

A traced function's graph refers to other functions by attribute: ``While`` (``body``, ``cond``),
``If``/``StatelessIf`` (``then_branch``, ``else_branch``), ``Case`` (``branches``), function calls
(``f``)... :func:`collectives` walks them all, from the function's ``GraphDef`` and its function
library, and returns one record per collective op: its type, dtype, implementation hint, the
function it is in, and whether that function runs only inside a branch of an ``If``/``Case`` (a
collective there hangs the job when ranks take different branches).

The dtypes each implementation can reduce, from TensorFlow's source:

* ``BaseCollectiveExecutor::CreateCollective`` (``tensorflow/core/common_runtime/base_collective_executor.cc``)
  accepts half, float, double and int64 reductions everywhere, and int32 and bfloat16 reductions only
  off the GPU ("Collective all-reduce does not support datatype DT_INT32 on DEVICE_GPU", with a TODO
  b/139421603; the same for DT_BFLOAT16); bool only for broadcasts. This is the error of TensorFlow issue
  #56184 (a maintainer links this check there).
* ``NcclManager`` (``tensorflow/core/nccl/nccl_manager.cc``, ``kValidDataTypes``) maps half, float,
  double, int32 and int64 to NCCL types.

So an all-reduce that MultiWorkerMirroredStrategy runs with NCCL on GPUs may be float16, float32,
float64 or int64; with RING on CPUs also int32 and bfloat16.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Set

COLLECTIVE_OPS = frozenset({
    "CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3", "CollectiveReduceScatterV2",
    "CollectiveGather", "CollectiveGatherV2", "CollectiveBcastSend", "CollectiveBcastRecv",
    "CollectiveBcastSendV2", "CollectiveBcastRecvV2", "CollectiveAllToAllV2", "CollectiveAllToAllV3",
    "NcclAllReduce", "NcclReduce", "NcclBroadcast", "HcomAllReduce", "HcomBroadcast",
})
REDUCTION_OPS = frozenset({"CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3",
                           "CollectiveReduceScatterV2", "NcclAllReduce", "NcclReduce"})
BRANCH_OPS = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})

# Reductions each implementation accepts (module docstring): "nccl" is MultiWorkerMirroredStrategy's
# NCCL on GPUs, "ring" its ring on CPUs.
REDUCTION_DTYPES: Dict[str, Set[str]] = {
    "nccl": {"float16", "float32", "float64", "int64"},
    "ring": {"float16", "bfloat16", "float32", "float64", "int32", "int64"},
}


def _function_refs(node) -> List[str]:
    """Names of the functions a node refers to through its attributes (calls, loop bodies, branches)."""
    names = []
    for value in node.attr.values():
        if value.HasField("func") and value.func.name:
            names.append(value.func.name)
        names.extend(f.name for f in value.list.func if f.name)
    return names


def _branch_refs(node) -> List[str]:
    if node.op not in BRANCH_OPS:
        return []
    return _function_refs(node)


def _dtype(node) -> str:
    from tensorflow.python.framework import dtypes

    if "T" in node.attr:
        return dtypes.as_dtype(node.attr["T"].type).name
    return "?"


def collectives(concrete) -> List[Dict]:
    """Every collective op of ``concrete`` (a ConcreteFunction) and of the functions it reaches.

    Returns:
        dicts with ``op``, ``dtype``, ``hint`` (``communication_hint``, lower case), ``function`` (``""``
        for the outer graph) and ``in_branch`` (the function is reachable from an ``If``/``Case`` branch).
    """
    graph_def = concrete.graph.as_graph_def()
    library = {f.signature.name: f for f in graph_def.library.function}
    nodes_of = {"": list(graph_def.node)}
    nodes_of.update({name: list(f.node_def) for name, f in library.items()})
    # Functions that run inside a branch: the branches, and everything they reach.
    in_branch: Set[str] = set()
    todo = [ref for nodes in nodes_of.values() for node in nodes for ref in _branch_refs(node)]
    while todo:
        name = todo.pop()
        if name in in_branch or name not in nodes_of:
            continue
        in_branch.add(name)
        todo.extend(ref for node in nodes_of[name] for ref in _function_refs(node))
    found = []
    for name, nodes in nodes_of.items():
        for node in nodes:
            if node.op in COLLECTIVE_OPS:
                hint = node.attr["communication_hint"].s.decode().lower() if "communication_hint" in node.attr else ""
                found.append(dict(op=node.op, dtype=_dtype(node), hint=hint, function=name,
                                  in_branch=name in in_branch))
    return found


def problems(found: Iterable[Dict], implementation: str) -> List[str]:
    """What would fail or hang: reductions of a dtype ``implementation`` refuses, collectives in branches."""
    out = []
    allowed = REDUCTION_DTYPES[implementation]
    for c in found:
        if c["op"] in REDUCTION_OPS and c["dtype"] not in allowed:
            out.append(f"{c['op']} of {c['dtype']} in {c['function'] or 'the outer graph'}: {implementation} "
                       f"reduces only {', '.join(sorted(allowed))}")
        if c["in_branch"]:
            out.append(f"{c['op']} ({c['dtype']}) inside a branch function ({c['function']})")
    return out
