"""humr.losses"""
