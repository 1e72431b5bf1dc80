"""The read path's domain: the average-price query and its exact response cache."""
