"""Training engines: warm-up SFT and preference optimisation, through TRL (no Django)."""
