"""Exit codes the project gives a meaning to, shared by training ranks and the launchers.

This module imports nothing, so that backends, training and light helper processes may all use it.
"""

__all__ = ["PREEMPTED_EXIT_CODE"]

# A run (or every rank of a job) that stopped on SIGTERM/SIGINT after saving a checkpoint:
# EX_TEMPFAIL of sysexits.h, "temporary failure, try again" -- requeue the job and it resumes.
PREEMPTED_EXIT_CODE = 75
