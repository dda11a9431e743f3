"""Demo data, published through the same commands an admin would use."""
