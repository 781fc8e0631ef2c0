"""humr.flows"""
