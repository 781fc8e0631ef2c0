"""humr.body"""
