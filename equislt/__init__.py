"""equislt."""
