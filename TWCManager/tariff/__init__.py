"""Electricity tariffs (issue 12): EDF Tempo's rules and prices (tempo.py, pure), the calendar as
learnt with its sources and cache (calendar.py), RTE's API (rte.py), and the daemon's poller and
tariff (service.py)."""
