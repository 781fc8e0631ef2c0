"""humr.engine"""
