"""Services that own every write to the mail store (one module per topic)."""
