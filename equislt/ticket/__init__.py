"""The ticket artifact shared by the construction and the search: seed + recipe + packed masks."""
from ._ticket import FORMAT, Ticket

__all__ = ["FORMAT", "Ticket"]
