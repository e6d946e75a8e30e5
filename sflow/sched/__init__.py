"""Scheduling: map every function of a job to a vCPU with start and finish times.

One module per algorithm behind :class:`~sflow.sched.base.Scheduler`; all work on a
:class:`~sflow.sched.problem.Problem` and return a :class:`~sflow.model.schedule.Schedule`.
:mod:`sflow.sched.registry` finds them by name, :mod:`sflow.sched.validate` checks any schedule
independently and :mod:`sflow.sched.simulate` replays a mapping.
"""
