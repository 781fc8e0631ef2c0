"""humr.data"""
