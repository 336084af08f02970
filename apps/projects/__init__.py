"""Projects: the unit of ownership, and who may do what in each."""
