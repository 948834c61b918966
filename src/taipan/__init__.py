"""Taipan: a self-hosted package repository server for conda, pip and R."""

__version__ = "0.1.0"
