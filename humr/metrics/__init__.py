"""humr.metrics"""
