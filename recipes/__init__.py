"""Training and evaluation recipes for HybridBERT Zoo."""
