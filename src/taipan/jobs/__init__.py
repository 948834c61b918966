"""Jobs: a registry of named handlers with JSON payloads, an in-process queue (default), a
distributed queue (Huey on Redis, consumed by ``taipan worker``) and a cron scheduler."""

from taipan.jobs.registry import JobQueue, JobRegistry
from taipan.jobs.scheduler import CronScheduler, DueRun

__all__ = ["CronScheduler", "DueRun", "JobQueue", "JobRegistry"]
