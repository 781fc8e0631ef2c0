"""humr.viz"""
