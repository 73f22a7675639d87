"""The ticket artifact shared by the construction and the search: seed + architecture + recipe + packed masks."""
from ._recipe import CertificateLike, Recipe, recipe_class
from ._ticket import FORMAT, Ticket

__all__ = ["CertificateLike", "FORMAT", "Recipe", "Ticket", "recipe_class"]
