"""humr.conditions"""
