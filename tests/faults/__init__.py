"""Faults against the real embedded stack: processes killed, services stopped, decisions retried."""
