"""Exit codes the project gives a meaning to, shared by training ranks and the launchers.

This module imports nothing, so that backends, training and light helper processes may all use it.

=====  =========================================================================================
code   meaning
=====  =========================================================================================
0      done (a launcher: every rank done)
1      an error, reported in one line (``error: ...``)
75     stopped on SIGTERM/SIGINT at a step boundary after saving what the run saves: run the same
       command again to resume (:data:`PREEMPTED_EXIT_CODE`)
79     stopped at once on a second SIGTERM/SIGINT, nothing saved after the newest checkpoint: run the
       same command again to resume from it (:data:`STOPPED_AT_ONCE_EXIT_CODE`)
=====  =========================================================================================
"""

__all__ = ["EXIT_CODES", "PREEMPTED_EXIT_CODE", "STOPPED_AT_ONCE_EXIT_CODE"]

# A run (or every rank of a job) that stopped on SIGTERM/SIGINT after saving a checkpoint:
# EX_TEMPFAIL of sysexits.h, "temporary failure, try again" -- requeue the job and it resumes.
PREEMPTED_EXIT_CODE = 75

# A run (or job) that a second SIGTERM/SIGINT stopped at once, without waiting for the step boundary
# and the save: the newest complete checkpoint is where it resumes. Outside sysexits.h's 64-78 and
# below 128 + signal, so that it is told apart from both.
STOPPED_AT_ONCE_EXIT_CODE = 79

EXIT_CODES = {
    PREEMPTED_EXIT_CODE: "stopped on a signal after saving; run the same command again to resume",
    STOPPED_AT_ONCE_EXIT_CODE: "stopped at once on a second signal; run the same command again to resume from the "
                               "newest complete checkpoint",
}
