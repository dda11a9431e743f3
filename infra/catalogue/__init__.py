"""Read models composed from several views: what a page of the catalogue shows."""
